"""`make run`: the embedded default. SQLite, no servers: migrate, seed the demo, print
how to get in, then run every process of Procfile.embedded under honcho."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        # the embedded default ignores a shell's server settings unless asked to keep them
        if not env.get("SUANLI_KEEP_ENV"):
            env.pop(name, None)
    env.setdefault("DJANGO_DEBUG", "true")
    env.setdefault("SCHEDULER_AUTO_APPROVE_NODES", "true")
    env.setdefault("PYTHONUNBUFFERED", "1")
    # Procfile lines say `python`: make that the virtualenv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The node agent (agent/, its own distribution) is installed editable by `make install`;
    # this checkout's copy comes first all the same, for a venv shared by several checkouts.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "agent"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], check=True, env=env)
    seeded = subprocess.run(
        [*manage, "seed_demo"], check=True, env=env, capture_output=True, text=True
    )
    info = json.loads(seeded.stdout.strip().splitlines()[-1])
    print("\n  Suanli is starting on http://127.0.0.1:8000\n")
    print(f"  Admin:       {info['admin']['url']}  user {info['admin']['username']}"
          f" / {info['admin']['password']}")
    logins = info["storefront_logins"]
    print(f"  Storefront:  http://127.0.0.1:8000/  {logins['buyer']} (buyer),"
          f" {logins['provider']} (provider) / {logins['password']}")
    print("  API docs:    http://127.0.0.1:8000/api/docs/")
    print(f"  Buyer API key    (org {info['buyer']['organization_id']}): "
          f"{info['buyer']['api_key']}")
    print(f"  Provider API key (org {info['provider']['organization_id']}): "
          f"{info['provider']['api_key']}\n", flush=True)
    honcho = [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile.embedded"),
              "-d", str(ROOT), "start"]
    try:
        return subprocess.call(honcho, env=env)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
