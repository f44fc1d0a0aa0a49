"""`suanli`: the buyer's command line."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from suanli import config
from suanli.client import ApiError, Client

DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def duration_s(text: str) -> int:
    """`90`, `90s`, `30m`, `1h`, `2h30m`, `1d`."""
    if text.isdigit():
        return int(text)
    match = DURATION.match(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 1h)")
    d, h, m, s = (int(g or 0) for g in match.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


def env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--env takes NAME=VALUE, not {text!r}")
    return name, value


def _client(args: argparse.Namespace) -> Client:
    settings = config.load()
    if not settings.get("api_key"):
        raise ApiError(0, "not_logged_in", "run `suanli login` first (or set SUANLI_API_KEY)")
    return Client(server=args.server or settings.get("server") or config.DEFAULT_SERVER,
                  api_key=str(settings["api_key"]))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def cmd_login(args: argparse.Namespace) -> int:
    key = args.api_key or getpass.getpass("API key: ")
    server = args.server or config.load().get("server") or config.DEFAULT_SERVER
    with Client(server=server, api_key=key) as client:
        wallet = client.wallet()  # the key works before it is kept
    path = config.save(server=server, api_key=key)
    print(f"logged in to {server}: {wallet.get('available', 0):,} tokens available "
          f"(saved in {path})")
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    with _client(args) as client:
        rows = client.gpu_classes()
    print(f"{'GPU':<16} {'VRAM':>5} {'TOKENS/GPU-H':>13} {'FREE':>5} {'LARGEST':>8}")
    for c in rows:
        free = sum(a["free_gpus"] for a in c.get("availability", []))
        largest = max((a["largest_shape"] for a in c.get("availability", [])), default=0)
        print(f"{c['name']:<16} {c['vram_gb']:>4}G {c['on_demand_rate']:>13,} {free:>5} "
              f"{largest:>8}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ApiError(0, "invalid", "give the command after --")
    with _client(args) as client:
        job = client.submit_job(gpu=args.gpu, gpus=args.gpus, command=command,
                                image=args.image, environment=dict(args.env or []),
                                max_duration_s=args.max_duration,
                                idempotency_key=args.idempotency_key)
    print(f"hold: {job['hold_amount']:,} tokens ({job['gpu_count']} x {job['gpu_class']} at "
          f"{job['rate_per_gpu_hour']:,} tokens/GPU-hour for up to {job['max_duration_s']}s)")
    print(f"job {job['id']} {job['state']}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        jobs = client.jobs(state=args.state)
    print(f"{'ID':>8} {'STATE':<10} {'GPU':<14} {'N':>2} {'COST':>12} CREATED")
    for j in jobs:
        print(f"{j['id']:>8} {j['state']:<10} {j['gpu_class']:<14} {j['gpu_count']:>2} "
              f"{j['cost']:>12,} {j['created_at']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.job(args.id))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel_job(args.id)
    print(f"job {job['id']} {job['state']}")
    return 0


def _writer(marks: bool) -> Callable[[str], None]:
    """Stored lines are `O text` / `E text` / `S note`: split them back to their streams,
    or print them in order with their marks."""
    carry = [""]

    def write(text: str) -> None:
        if marks:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        lines = (carry[0] + text).split("\n")
        carry[0] = lines.pop()
        for line in lines:
            mark, _, body = line.partition(" ")
            (sys.stderr if mark in ("E", "S") else sys.stdout).write(body + "\n")
        sys.stdout.flush()

    return write


def cmd_logs(args: argparse.Namespace) -> int:
    write = _writer(args.marks)
    with _client(args) as client:
        pieces = (client.follow_logs(args.id, attempt=args.attempt) if args.follow
                  else client.read_log(args.id, attempt=args.attempt))
        for text in pieces:
            write(text)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.wait_job(args.id, timeout_s=args.timeout)
    print(f"job {job['id']} {job['state']}" + (f": {job['failure_reason']}"
                                               if job.get("failure_reason") else ""),
          file=sys.stderr)
    code = job.get("exit_code")
    if job["state"] == "succeeded":
        return 0
    return int(code) if isinstance(code, int) and 0 < code < 256 else 1


def cmd_outputs_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        written = client.download_outputs(args.id, Path(args.directory))
    for path in written:
        print(path)
    return 0


def cmd_wallet(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print_json(client.wallet())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="suanli", description="Suanli: GPU compute by the "
                                     "token, from your terminal.")
    parser.add_argument("--server", help="API server (default: from `suanli login`)")
    sub = parser.add_subparsers(dest="command_name", required=True)

    login = sub.add_parser("login", help="keep the server and API key (0600 file)")
    login.add_argument("--api-key", help="the key (default: asked for)")
    login.set_defaults(run=cmd_login)
    sub.add_parser("gpus", help="GPU classes, rates and what is free").set_defaults(run=cmd_gpus)
    sub.add_parser("wallet", help="available, held, credit").set_defaults(run=cmd_wallet)

    jobs = sub.add_parser("jobs", help="submit and watch jobs").add_subparsers(
        dest="jobs_command", required=True)
    submit = jobs.add_parser("submit", help="submit a job: suanli jobs submit ... -- CMD")
    submit.add_argument("--gpu", required=True, help="GPU class, e.g. H100-80GB")
    submit.add_argument("--gpus", type=int, default=1)
    submit.add_argument("--image", default=None)
    submit.add_argument("--env", type=env_pair, action="append", metavar="NAME=VALUE")
    submit.add_argument("--max-duration", type=duration_s, default=3600, metavar="DURATION")
    submit.add_argument("--idempotency-key", default=None,
                        help="default: a new one (a retried submit with the same key "
                             "submits once)")
    submit.add_argument("command", nargs=argparse.REMAINDER)
    submit.set_defaults(run=cmd_submit)
    listing = jobs.add_parser("list", help="your jobs, newest first")
    listing.add_argument("--state", default=None)
    listing.set_defaults(run=cmd_list)
    for name, run, text in (("show", cmd_show, "one job as JSON"),
                            ("cancel", cmd_cancel, "cancel a job")):
        p = jobs.add_parser(name, help=text)
        p.add_argument("id", type=int)
        p.set_defaults(run=run)
    logs = jobs.add_parser("logs", help="what the job printed")
    logs.add_argument("id", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="follow while it runs")
    logs.add_argument("--attempt", type=int, default=None)
    logs.add_argument("--marks", action="store_true",
                      help="every line in order on stdout, with its stream's mark")
    logs.set_defaults(run=cmd_logs)
    wait = jobs.add_parser("wait", help="wait for the job; exit with its exit code")
    wait.add_argument("id", type=int)
    wait.add_argument("--timeout", type=float, default=None)
    wait.set_defaults(run=cmd_wait)

    outputs = sub.add_parser("outputs", help="files jobs wrote").add_subparsers(
        dest="outputs_command", required=True)
    get = outputs.add_parser("get", help="download a job's outputs (sha256 checked)")
    get.add_argument("id", type=int)
    get.add_argument("directory", nargs="?", default=".")
    get.set_defaults(run=cmd_outputs_get)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except ApiError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return 1
    except httpx.HTTPError as error:
        print(f"error: unreachable: {error}", file=sys.stderr)
        return 1
    except TimeoutError as error:
        print(f"error: timeout: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
