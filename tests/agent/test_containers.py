"""The container argv builders: podman and docker get the same hardening from one
description, and nothing from a spec reaches an option position. Docker's argv is checked
here only (no docker engine on these machines); podman's runs for real in
test_isolation_podman.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from suanli_agent.containers import (
    FALLBACK_USER,
    ContainerRuntime,
    ContainerRuntimeError,
    Limits,
    RunRequest,
    detect_runtime,
    subid_ranges_present,
)

GIB = 1024**3
LIMITS = Limits(cpus_per_gpu=2.5, memory_per_gpu_bytes=4 * GIB, pids=256)


def _runtime(kind: str, userns: str, *, pass_gpus: bool = True) -> ContainerRuntime:
    return ContainerRuntime(kind=kind, executable=f"/usr/bin/{kind}", pass_gpus=pass_gpus,
                            version="1.0", userns=userns, limits=LIMITS)


def _request(**overrides: object) -> RunRequest:
    values: dict[str, object] = {
        "image": "registry.example.com:5000/team/train:1", "argv": ["--privileged", "-v", "/:/h"],
        "name": "suanli-a7-abc123", "gpu_indices": [2, 5], "env_file": Path("/state/r/env"),
        "job_dir": Path("/state/r/job"), "gpu_count": 2,
    }
    values.update(overrides)
    return RunRequest(**values)  # type: ignore[arg-type]


def _option_pairs(argv: list[str]) -> dict[str, list[str]]:
    """Options before `--` and their values (flags without a value map to [''])."""
    end = argv.index("--")
    pairs: dict[str, list[str]] = {}
    i = 2
    single = {"--rm"}
    while i < end:
        if argv[i] in single:
            pairs.setdefault(argv[i], []).append("")
            i += 1
        else:
            pairs.setdefault(argv[i], []).append(argv[i + 1])
            i += 2
    return pairs


@pytest.mark.parametrize("kind", ["podman", "docker"])
def test_both_runtimes_get_the_same_hardening(kind: str) -> None:
    argv = _runtime(kind, "user").run_argv(_request())
    options = _option_pairs(argv)
    assert argv[:2] == [f"/usr/bin/{kind}", "run"]
    assert options["--rm"] == [""]
    assert options["--name"] == ["suanli-a7-abc123"]
    assert options["--cap-drop"] == ["ALL"]
    assert options["--security-opt"] == ["no-new-privileges"]
    assert options["--pids-limit"] == ["256"]
    assert options["--memory"] == [str(8 * GIB)]
    assert options["--memory-swap"] == [str(8 * GIB)]  # equal: no swap beyond memory
    assert options["--cpus"] == ["5.00"]
    assert options["--network"] == ["none"]
    assert options["--user"] == [FALLBACK_USER]
    assert options["--pull"] == ["never"]
    assert options["--workdir"] == ["/suanli"]
    assert options["--env-file"] == ["/state/r/env"]
    [mount] = options["--volume"]
    assert mount.startswith("/state/r/job:/suanli:rw")
    # nothing weakens the default seccomp profile, no other host path, no privileges
    assert not any("seccomp" in value or "unconfined" in value
                   for values in options.values() for value in values)
    assert "--privileged" not in argv[: argv.index("--")]
    assert "--mount" not in options and len(options["--volume"]) == 1
    # the image comes right after `--`, the command after it, untouched
    end = argv.index("--")
    assert argv[end + 1:] == ["registry.example.com:5000/team/train:1", "--privileged", "-v",
                              "/:/h"]


def test_only_the_assigned_gpus_are_passed_in_each_runtimes_form() -> None:
    docker = _option_pairs(_runtime("docker", "user").run_argv(_request()))
    podman = _option_pairs(_runtime("podman", "user").run_argv(_request()))
    assert docker["--gpus"] == ["device=2,5"]
    assert podman["--device"] == ["nvidia.com/gpu=2", "nvidia.com/gpu=5"]
    fake = _option_pairs(_runtime("podman", "user", pass_gpus=False).run_argv(_request()))
    assert "--device" not in fake and "--gpus" not in fake


def test_container_root_is_never_host_root() -> None:
    assert _option_pairs(_runtime("podman", "auto").run_argv(_request()))["--userns"] == ["auto"]
    remap = _option_pairs(_runtime("docker", "remap").run_argv(_request()))
    assert "--user" not in remap and "--userns" not in remap  # the daemon remaps every user
    assert _option_pairs(_runtime("docker", "user").run_argv(_request()))["--user"] == [
        FALLBACK_USER]
    # podman hands the job directory to the mapped user; docker's is handed over by the agent
    assert _option_pairs(_runtime("podman", "auto").run_argv(_request()))["--volume"] == [
        "/state/r/job:/suanli:rw,U"]
    assert _option_pairs(_runtime("docker", "user").run_argv(_request()))["--volume"] == [
        "/state/r/job:/suanli:rw"]


def test_internet_only_where_the_job_asks_for_it() -> None:
    options = _option_pairs(_runtime("podman", "auto").run_argv(_request(network="internet")))
    assert "--network" not in options  # the runtime's default network


@pytest.mark.parametrize("kind", ["podman", "docker"])
def test_lifecycle_commands_end_options_before_the_name_or_image(kind: str) -> None:
    runtime = _runtime(kind, "user")
    assert runtime.stop_argv("suanli-a1", 10) == [f"/usr/bin/{kind}", "stop", "--time", "10",
                                                  "--", "suanli-a1"]
    assert runtime.remove_argv("suanli-a1") == [f"/usr/bin/{kind}", "rm", "--force", "--",
                                                "suanli-a1"]
    assert runtime.pull_argv("busybox") == [f"/usr/bin/{kind}", "pull", "--quiet", "--",
                                            "busybox"]
    assert runtime.image_present_argv("busybox")[-2:] == ["--", "busybox"]


def test_a_nodes_share_is_the_host_divided_by_its_gpus() -> None:
    limits = Limits.host_share(4, cpus_per_gpu=None, memory_per_gpu_gb=None)
    import os

    assert limits.cpus_per_gpu == pytest.approx((os.cpu_count() or 1) / 4)
    set_by_provider = Limits.host_share(4, cpus_per_gpu=3, memory_per_gpu_gb=16, pids=100)
    assert set_by_provider.for_gpus(2) == ("6.00", 32 * GIB, 100)


def test_subid_ranges_are_looked_for_under_the_owner(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("alice:100000:65536\n")
    subgid.write_text("alice:100000:65536\n")
    assert subid_ranges_present((subuid, subgid)) is False
    subuid.write_text("containers:2147483647:2147483648\n")
    subgid.write_text("containers:2147483647:2147483648\n")
    import os

    assert subid_ranges_present((subuid, subgid)) is (os.geteuid() == 0)


def test_runtime_asked_for_by_name_must_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert detect_runtime("auto", pass_gpus=False) is None
    with pytest.raises(ContainerRuntimeError, match="'podman' not found or not answering"):
        detect_runtime("podman", pass_gpus=False)
