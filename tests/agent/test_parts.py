"""The agent's small parts: backoff, GPU discovery and allocation, the CLI's refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from suanli_agent.client import Backoff
from suanli_agent.gpus import (
    Gpu,
    GpuDiscoveryError,
    GpuPool,
    discover_gpus,
    parse_nvidia_smi,
)

REPO = Path(__file__).resolve().parents[2]


def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base_s=1.0, cap_s=30.0)
    delays = [backoff.next_delay() for _ in range(10)]
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_nvidia_smi_output_is_parsed() -> None:
    output = "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n\n"
    assert parse_nvidia_smi(output) == [
        Gpu(index=0, name="NVIDIA H100 80GB HBM3", memory_mb=81559),
        Gpu(index=1, name="NVIDIA H100 80GB HBM3", memory_mb=81559),
    ]
    with pytest.raises(GpuDiscoveryError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("garbage")


def test_without_nvidia_smi_fake_gpus_are_named_after_the_class() -> None:
    gpus, source = discover_gpus(fake_count=2, gpu_class="A100-40GB", use_nvidia_smi=False)
    assert source == "fake"
    assert gpus == [Gpu(0, "A100-40GB", 40960), Gpu(1, "A100-40GB", 40960)]
    with pytest.raises(GpuDiscoveryError, match=r"\(--gpus not given\)"):
        discover_gpus(fake_count=None, gpu_class="A100-40GB", use_nvidia_smi=False)
    with pytest.raises(GpuDiscoveryError, match=r"\(--gpu-class not given\)"):
        discover_gpus(fake_count=2, gpu_class=None, use_nvidia_smi=False)


def test_gpu_pool_never_hands_out_an_index_twice() -> None:
    pool = GpuPool([Gpu(i, "x", 1) for i in range(4)])
    first = pool.allocate(3)
    assert first == [0, 1, 2]
    assert pool.allocate(2) is None
    assert pool.allocate(1) == [3]
    pool.release([1])
    assert pool.free_count == 1
    assert pool.allocate(1) == [1]


def _cli(*args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "agent"), "PATH": path}
    env.pop("SUANLI_NODE_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "suanli_agent", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_real_mode_without_nvidia_smi_or_gpus_exits_with_a_clear_message(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text("nt_x_y")
    token.chmod(0o600)
    result = _cli("--server", "http://127.0.0.1:9", "--token-file", str(token),
                  path=str(tmp_path))
    assert result.returncode == 2
    assert ("nvidia-smi not found, so this node's GPUs cannot be discovered: pass --gpus N "
            "and --gpu-class NAME") in result.stderr
    assert "(--gpus and --gpu-class not given)" in result.stderr


def test_real_mode_without_nvidia_smi_needs_the_gpu_class_too(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("nt_x_y")
    token.chmod(0o600)
    result = _cli("--server", "http://127.0.0.1:9", "--token-file", str(token), "--gpus", "2",
                  path=str(tmp_path))
    assert result.returncode == 2
    assert "(--gpu-class not given)" in result.stderr


def test_a_token_on_the_command_line_is_refused_with_the_reason(tmp_path: Path) -> None:
    result = _cli("--server", "http://127.0.0.1:9", "--token", "nt_abc_secret", "--gpus", "1",
                  path=os.environ["PATH"])
    assert result.returncode == 2
    assert "--token is refused: a command line is readable in /proc" in result.stderr
    assert "--token-file" in result.stderr


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o666])
def test_a_token_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    token = tmp_path / "token"
    token.write_text("nt_abc_secret")
    token.chmod(mode)
    result = _cli("--server", "http://127.0.0.1:9", "--token-file", str(token), "--gpus", "1",
                  path=os.environ["PATH"])
    assert result.returncode == 2
    assert f"is readable by others (mode {mode:04o}): chmod 600 it" in result.stderr


def test_a_token_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    from suanli_agent.__main__ import TokenRefused, token_read

    token = tmp_path / "token"
    token.write_text("nt_abc_secret")
    token.chmod(0o600)
    assert token_read(token) == "nt_abc_secret"
    assert token_read(None, {"SUANLI_NODE_TOKEN": "nt_env_token\n"}) == "nt_env_token"
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    os.chown(token, 65534, 65534)
    with pytest.raises(TokenRefused, match="must be owned by the agent's user"):
        token_read(token)


def test_cli_needs_a_token_or_simulate(tmp_path: Path) -> None:
    result = _cli("--server", "http://127.0.0.1:9", path=os.environ["PATH"])
    assert result.returncode == 2
    assert "give --token-file PATH (or $SUANLI_NODE_TOKEN), or --simulate N" in result.stderr
    result = _cli("--server", "https://x", "--simulate", "2", path=os.environ["PATH"])
    assert result.returncode == 2
    assert "--simulate needs --provider-key" in result.stderr
