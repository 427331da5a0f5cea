"""Smoke tests of the benchmark suite (benchmarks/): tiny sizes, the test device (--device), a few iterations. No
timing is asserted.

``test_thunder_backend_matches_eager_tiny`` is the acceptance test of the compiler on the benchmark
workloads: every workload, train and inference, through ``thunder.jit`` with its default executors.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.backends import BackendSpec
from benchmarks.harness import ROW_FIELDS, RunConfig, run_benchmarks
from benchmarks.kernels import ATTENTION_CASES
from benchmarks.models import GPT, GPTConfig, Llama, LlamaConfig
from benchmarks.report import format_table
from benchmarks.workloads import WORKLOADS, plan_rows

REPO_ROOT = Path(__file__).resolve().parent.parent
ALL_WORKLOADS = [w for w in WORKLOADS if w != "train-step"]  # checked on its own: test_train_step_workload_tiny
MODES = ["train", "inference"]


def run_tiny(backends: list[BackendSpec], workloads=ALL_WORKLOADS, isolation: str = "backend") -> list[dict]:
    cfg = RunConfig(
        workloads=workloads,
        backends=backends,
        modes=MODES,
        device=torch.get_default_device().type,
        dtype="float32",
        size="tiny",
        iters=2,
        warmup=1,
        overhead_calls=200,
        overhead_repeat=2,
        isolation=isolation,
        timeout_s=300,
    )
    return run_benchmarks(cfg)["rows"]


def _keys(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(r["workload"], r["case"], r["mode"]) for r in rows]


def _explain(row: dict, with_traceback: bool = True) -> str:
    msg = f"{row['workload']}/{row['case']} {row['mode']} {row['backend']}: {row.get('error')}"
    return msg + ("\n" + (row.get("traceback") or "") if with_traceback else "")


@pytest.mark.slow  # subprocesses that each import torch and run every workload
def test_eager_rows_all_workloads_tiny():
    rows = run_tiny([BackendSpec("eager")])
    assert _keys(rows) == plan_rows(ALL_WORKLOADS, MODES)
    assert {r["case"] for r in rows} == {"add", "elementwise10", "module10", "chain", "gpt2", "llama", "llama3", "hf_llama", "llama_decode", "cross_entropy",
                                         "linear_ce", "rms_norm", *ATTENTION_CASES}  # fmt: skip
    for r in rows:
        assert set(ROW_FIELDS) <= set(r), f"missing fields {set(ROW_FIELDS) - set(r)}"
        assert r["error"] is None, _explain(r)
        assert r["backend"] == "eager" and r["device"] == torch.get_default_device().type and r["dtype"] == "float32"
        assert r["step_time_s"] > 0 and r["first_call_s"] > 0 and r["peak_mem_bytes"] >= 0
        assert r["step_time_min_s"] <= r["step_time_s"] <= r["step_time_max_s"]
        assert r["step_vs_eager"] == 1.0 and r["mem_vs_eager"] in (1.0, None)
        assert r["step_vs_torchcompile"] is None  # no torch.compile row in this run
        assert r["max_diff_out"] == 0.0, "eager against itself must be bitwise identical"
        if r["mode"] == "train":
            assert r["max_diff_grad"] == 0.0
            assert r["grads_missing"] == []
        else:
            assert r["max_diff_grad"] is None
        if r["mode"] == "train" and r["workload"] in ("gpt2", "llama"):
            assert math.isfinite(r["loss"])
    overhead = [r for r in rows if r["workload"] == "overhead"]
    assert [r["mode"] for r in overhead] == ["inference", "inference", "inference"]
    assert all(r["calls"] == 200 for r in overhead)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_model_loss_finite_and_backward_fills_every_grad(arch):
    torch.manual_seed(0)
    if arch == "gpt2":
        cfg = GPTConfig.preset("tiny")
        model, T = GPT(cfg), cfg.block_size
    else:
        cfg = LlamaConfig.preset("tiny")
        model, T = Llama(cfg), cfg.max_seq_len
    idx = torch.randint(0, cfg.vocab_size, (cfg.batch_size, T))
    targets = torch.randint(0, cfg.vocab_size, (cfg.batch_size, T))

    logits = model(idx)
    assert logits.shape == (cfg.batch_size, T, cfg.vocab_size)
    loss = model(idx, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 1.0  # near-uniform predictions at init
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_presets():
    small = GPTConfig.preset("small")
    assert (small.n_layer, small.n_embd, small.n_head, small.block_size, small.batch_size, small.vocab_size) == (
        4,
        256,
        4,
        128,
        4,
        1024,
    )
    with torch.device("meta"):
        gpt2 = GPT(GPTConfig.preset("full"))
    assert sum(p.numel() for p in gpt2.parameters()) == 124_439_808  # GPT-2 124M, tied embeddings
    llama = LlamaConfig.preset("full")
    assert (llama.n_layer, llama.dim, llama.n_head, llama.n_kv_head, llama.hidden_dim, llama.max_seq_len) == (
        4,
        2048,
        32,
        8,
        8192,
        2048,
    )
    with pytest.raises(ValueError, match="unknown"):
        LlamaConfig.preset("huge")


def test_failing_backend_gives_an_error_row():
    rows = run_tiny([BackendSpec("eager"), BackendSpec("no-such-backend")], workloads=["overhead"], isolation="none")
    bad = [r for r in rows if r["backend"] == "no-such-backend"]
    assert len(bad) == 3 and all(r["error"] and "no-such-backend" in r["error"] for r in bad)
    assert all(r["step_time_s"] is None and r["step_vs_eager"] is None for r in bad)
    assert all(r["error"] is None for r in rows if r["backend"] == "eager")
    assert "ERROR [1]" in format_table(rows) and "ERROR [2]" in format_table(rows, markdown=True)


def test_train_step_workload_tiny():
    """The whole training step (forward, backward, AdamW, zero_grad) as the timed callable: eager and thunder.jit
    rows, compared with eager after as many steps (the loss and every parameter)."""
    rows = run_tiny([BackendSpec("eager"), BackendSpec("thunder")], workloads=["train-step"], isolation="none")
    assert sorted((r["case"], r["mode"], r["backend_kind"]) for r in rows) == [
        ("adamw", "train", "eager"), ("adamw", "train", "thunder"),
        ("adamw-fused", "train", "eager"), ("adamw-fused", "train", "thunder"),
    ]  # fmt: skip
    for r in rows:
        assert r["error"] is None, _explain(r)
        assert r["max_diff_out"] < 1e-4 and r["max_diff_grad"] < 1e-4, _explain(r, with_traceback=False)


@pytest.mark.slow  # subprocesses that each import torch and run every workload
def test_command_line(tmp_path):
    out = tmp_path / "out.json"
    cmd = [
        sys.executable,
        "-m",
        "benchmarks",
        "--size",
        "tiny",
        "--device",
        torch.get_default_device().type,
        "--backends",
        "eager",
        "--workloads",
        "overhead,chain",
        "--iters",
        "3",
        "--warmup",
        "1",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "max diff out" in proc.stdout
    assert "warning: --size tiny is a smoke test" in proc.stderr  # 3 timed steps of microseconds mean nothing
    result = json.loads(out.read_text())
    assert result["meta"]["config"]["size"] == "tiny" and result["meta"]["torch"] == torch.__version__
    rows = result["rows"]
    assert _keys(rows) == [
        ("overhead", "add", "inference"),
        ("overhead", "elementwise10", "inference"),
        ("overhead", "module10", "inference"),
        ("chain", "chain", "train"),
        ("chain", "chain", "inference"),
    ]
    for r in rows:
        assert set(ROW_FIELDS) <= set(r)
        assert r["error"] is None, _explain(r)
        assert r["max_diff_out"] == 0.0 and r["step_time_s"] > 0
        assert r["iters"] == 3 and r["warmup"] == 1
    assert rows[3]["max_diff_grad"] == 0.0  # chain, train


@pytest.mark.slow  # subprocesses that each import torch and run every workload
def test_thunder_backend_matches_eager_tiny():
    """The acceptance test: thunder.jit (default executors) runs every workload, train and inference, like eager."""
    rows = run_tiny([BackendSpec("thunder")])
    assert _keys(rows) == plan_rows(ALL_WORKLOADS, MODES)
    failures = []
    for r in rows:
        assert r["backend"] == "thunder[default]"
        if r["error"] is not None:
            failures.append(_explain(r, with_traceback=not failures))  # the first traceback only
            continue
        if not r["max_diff_out"] < 1e-4:
            failures.append(f"{r['workload']}/{r['case']} {r['mode']}: output max diff {r['max_diff_out']}")
        if r["mode"] == "train":
            if r["grads_missing"]:
                failures.append(f"{r['workload']} train: no gradient for {r['grads_missing']}")
            if not r["max_diff_grad"] < 1e-4:
                failures.append(f"{r['workload']} train: gradient max diff {r['max_diff_grad']}")
    assert not failures, "\n".join(failures)


def test_plot_of_a_saved_run(tmp_path):
    results = tmp_path / "run.json"
    run = [sys.executable, "-m", "benchmarks", "--size", "tiny", "--device", "cpu", "--workloads", "chain",
           "--backends", "eager,thunder", "--mode", "train", "--iters", "1", "--warmup", "0", "--isolation", "none",
           "--json", str(results)]  # fmt: skip
    subprocess.run(run, cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    plot = [sys.executable, "-m", "benchmarks", "--plot", str(results), "--plot-dir", str(tmp_path / "plots")]
    printed = subprocess.run(plot, cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=120).stdout
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["first_call.png", "peak_mem.png", "step_time.png"]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {p}" in printed


def test_thunder_variants_name_transforms_after_a_plus():
    from benchmarks.backends import parse_thunder_transforms, parse_thunder_variant

    assert parse_thunder_variant("default+cudagraphs") is None
    assert parse_thunder_transforms("default+cudagraphs") == ("cudagraphs",)
    assert parse_thunder_variant("torchcompile,sdpa+cudagraphs") == ("torchcompile", "sdpa")
    spec = BackendSpec("thunder", executors=None, transforms=("cudagraphs",))
    assert spec.name == "thunder[default]+cudagraphs"
    assert BackendSpec.from_json(spec.to_json()) == spec
    assert BackendSpec("thunder").name == "thunder[default]"


def test_decode_step_compiles_once_for_every_position():
    """The decoding step keeps its shapes whatever the position (the case for CUDA graphs): one compilation, and
    the cache written in place as eager writes it."""
    import thunder
    from benchmarks.workloads import build_case

    ours, reference = (build_case("decode", "llama_decode", "tiny", "inference", "cpu", torch.float32) for _ in "ab")
    jstep = thunder.jit(ours.fn)
    with torch.no_grad():
        for pos in (3, 4, 9):
            idx, input_pos = torch.randint(0, 64, (2, 1)), torch.tensor([pos])
            torch.testing.assert_close(jstep(idx, input_pos), reference.fn(idx, input_pos))
    assert thunder.cache_misses(jstep) == 1
    torch.testing.assert_close(ours.fn.k_cache0, reference.fn.k_cache0)
