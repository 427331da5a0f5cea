"""Smoke test of the nvfuser_direct calls this package depends on, one by one: `python thunder_executors_nvfuser/smoke.py`.

Each check builds a one- or two-operation fusion with exactly the call form the planner emits (through
emit.build_fusion), runs it on CUDA and compares with torch. It prints one line per check (ok / FAIL with the
error) and exits non-zero if any failed, so that a single GPU run shows every API mismatch at once.
"""

from __future__ import annotations

import sys
import traceback

import torch
from thunder_executors_nvfuser.translation import DType, FusionPlan, NvCall, Ref

F32, BF16, I64 = "Float", "BFloat16", "Int"
_results: list[tuple[str, str]] = []


def _plan(inputs, calls, n_outputs=1, n_random=0) -> FusionPlan:
    n_values = len(inputs) + len(calls)
    return FusionPlan(
        inputs=tuple((tuple(t.shape), {torch.float32: F32, torch.bfloat16: BF16, torch.int64: I64,
                                       torch.bool: "Bool"}[t.dtype]) for t in inputs),  # fmt: skip
        calls=tuple(calls),
        outputs=tuple(range(n_values - n_outputs, n_values)),
        n_random=n_random,
    )


def check(name: str, inputs, calls, reference, *, rng=(), atol=1e-5, rtol=1e-5, exact=False) -> None:
    """Builds and runs the fusion; compares its last output with reference(*inputs)."""
    from thunder_executors_nvfuser.emit import build_fusion

    try:
        run = build_fusion(_plan(inputs, calls, n_random=len(rng) // 2), inputs)
        (out,) = run(list(inputs), list(rng))
        expected = reference(*inputs)
        if expected is not None:
            if exact:
                assert torch.equal(out, expected), f"got {out}, expected {expected}"
            else:
                torch.testing.assert_close(out, expected, atol=atol, rtol=rtol)
        _results.append((name, "ok"))
    except Exception as e:
        _results.append((name, f"FAIL {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"))
        if "-v" in sys.argv:
            traceback.print_exc()


def c(fn, *args, **kwargs) -> NvCall:
    return NvCall(fn, tuple(args), tuple(sorted(kwargs.items())))


def main() -> int:
    import nvfuser_direct

    print(f"nvfuser_direct {nvfuser_direct.version()}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
    dev = "cuda"
    x = torch.randn(4, 8, device=dev)
    y = torch.randn(4, 8, device=dev)
    v = torch.randn(8, device=dev)
    b16 = torch.randn(4, 8, device=dev, dtype=torch.bfloat16)
    r0, r1 = Ref(0), Ref(1)
    two_f = c("define_scalar", 2.0, dtype=DType(F32))

    check("define_tensor + ops.add + add_output + execute", [x, y], [c("add", r0, r1)], torch.add)
    check("define_scalar(2.0, dtype=Float) + ops.mul", [x], [two_f, c("mul", r0, Ref(1))], lambda x: x * 2)
    check("define_scalar(2, dtype=Int) + ops.mul (int64)", [torch.arange(8, device=dev)],
          [c("define_scalar", 2, dtype=DType(I64)), c("mul", r0, Ref(1))], lambda t: t * 2, exact=True)  # fmt: skip
    check("cast bf16 -> Float -> BFloat16", [b16], [c("cast", r0, dtype=DType(F32)), c("exp", Ref(1)),
          c("cast", Ref(2), dtype=DType(BF16))], lambda t: torch.exp(t), atol=1e-2, rtol=1e-2)  # fmt: skip
    for name in ("exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan",
                 "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "reciprocal", "sigmoid", "erf",
                 "erfc", "erfinv", "lgamma", "floor", "ceil", "trunc", "abs", "neg", "sign"):  # fmt: skip
        domain = {"acosh": lambda t: t.abs() + 1.1, "asin": lambda t: t.clamp(-0.9, 0.9), "acos": lambda t: t.clamp(-0.9, 0.9),
                  "atanh": lambda t: t.clamp(-0.9, 0.9), "erfinv": lambda t: t.clamp(-0.9, 0.9)}.get(name, lambda t: t.abs() + 0.1)  # fmt: skip
        check(f"ops.{name}", [domain(x)], [c(name, r0)], getattr(torch, name), atol=1e-4, rtol=1e-4)
    for name in ("isnan", "isinf", "isfinite", "signbit"):
        special = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -float("inf"), -1.5], device=dev)
        check(f"ops.{name}", [special], [c(name, r0)], getattr(torch, name), exact=True)
    for name in ("add", "sub", "mul", "div", "pow", "atan2", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"):
        check(f"ops.{name}", [x.abs() + 0.5, y], [c(name, r0, r1)], getattr(torch, name))
    nan = torch.tensor([float("nan"), 1.0, 2.0], device=dev)
    check("ops.maximum propagates NaN", [nan, torch.ones(3, device=dev)], [c("maximum", r0, r1)], torch.maximum)
    bools = [torch.rand(8, device=dev) > 0.5, torch.rand(8, device=dev) > 0.5]
    for name, ref in (("logical_and", torch.logical_and), ("logical_or", torch.logical_or), ("ne", torch.logical_xor)):
        check(f"ops.{name} (bool)", bools, [c(name, r0, r1)], ref, exact=True)
    check("ops.logical_not (bool)", bools[:1], [c("logical_not", r0)], torch.logical_not, exact=True)
    ints = [torch.randint(0, 100, (8,), device=dev), torch.randint(0, 100, (8,), device=dev)]
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        check(f"ops.{name} (int64)", ints, [c(name, r0, r1)], getattr(torch, name), exact=True)
    check("ops.bitwise_not (int64)", ints[:1], [c("bitwise_not", r0)], torch.bitwise_not, exact=True)
    check("ops.where(pred, tensor, scalar)", [x > 0, x], [c("define_scalar", 0.5, dtype=DType(F32)),
          c("where", r0, r1, Ref(2))], lambda p, t: torch.where(p, t, 0.5))  # fmt: skip
    check("ops.sum(x, dims, False, Float)", [x], [c("sum", r0, (1,), False, DType(F32))], lambda t: t.sum(1))
    check("ops.prod(x, dims, False, Float)", [x], [c("prod", r0, (1,), False, DType(F32))], lambda t: t.prod(1))
    check("ops.max(x, dims, False)", [x], [c("max", r0, (0, 1), False)], lambda t: t.amax((0, 1)))
    check("ops.min(x, dims, False)", [x], [c("min", r0, (1,), False)], lambda t: t.amin(1))
    check("ops.max propagates NaN", [nan], [c("max", r0, (0,), False)], lambda t: t.amax(0))
    check("ops.var(x, dims, correction, False)", [x], [c("var", r0, (1,), 1, False)], lambda t: t.var(1))
    check("ops.var correction=0", [x], [c("var", r0, (0, 1), 0, False)], lambda t: t.var((0, 1), correction=0))
    col = x[:, 2:3]
    check("ops.squeeze of a sliced length-1 dim + broadcast_in_dim", [col],
          [c("squeeze", r0, (1,)), c("broadcast_in_dim", Ref(1), (4, 8), (0,))], lambda t: t.expand(4, 8))  # fmt: skip
    check("ops.broadcast_in_dim (new dims)", [v], [c("broadcast_in_dim", r0, (4, 8), (1,))], lambda t: t.expand(4, 8))
    check("ops.reshape", [x], [c("reshape", r0, (2, 16))], lambda t: t.reshape(2, 16))
    check("ops.reshape adding a length-1 dim, then broadcast", [x[:, 0].contiguous()],
          [c("reshape", r0, (4, 1)), c("squeeze", Ref(1), (1,)), c("broadcast_in_dim", Ref(2), (4, 8), (0,))],
          lambda t: t.reshape(4, 1).expand(4, 8))  # fmt: skip
    check("ops.permute", [x], [c("permute", r0, (1, 0))], lambda t: t.permute(1, 0).contiguous())
    check("ops.slice(x, start, end, strides)", [x], [c("slice", r0, (0, 1), (4, 5), (1, 1))], lambda t: t[:, 1:5])
    check("ops.pad(x, widths, value), last dimension first", [x], [c("define_scalar", 0.25, dtype=DType(F32)),
          c("pad", r0, (1, 2, 0, 3), Ref(1))], lambda t: torch.nn.functional.pad(t, (1, 2, 0, 3), value=0.25))  # fmt: skip
    check("ops.cat([a, b], dim)", [x, y], [c("cat", (r0, r1), 1)], lambda a, b: torch.cat([a, b], 1))
    check("ops.full(shape, value, dtype)", [x], [two_f, c("full", (4, 8), Ref(1), DType(F32)), c("add", r0, Ref(2))],
          lambda t: t + 2)  # fmt: skip
    check("ops.iota(length, start, step, Int)", [torch.zeros(5, dtype=torch.int64, device=dev)],
          [c("define_scalar", 5, dtype=DType(I64)), c("define_scalar", 3, dtype=DType(I64)),
           c("define_scalar", 2, dtype=DType(I64)), c("iota", Ref(1), Ref(2), Ref(3), DType(I64)), c("add", r0, Ref(4))],
          lambda t: torch.arange(3, 13, 2, device=dev), exact=True)  # fmt: skip
    check("non-contiguous (transposed) input", [x.t()], [c("exp", r0)], lambda t: t.exp())
    check("expanded (stride 0) input", [v.expand(4, 8)], [c("mul", r0, r0)], lambda t: t * t)
    check("0-d input", [torch.tensor(1.5, device=dev)], [c("exp", r0)], torch.exp)
    _random_checks(dev)
    check("ops.matmul", [x, y.t()], [c("matmul", r0, r1)], torch.matmul, atol=1e-2, rtol=1e-2)
    check("ops.linear(a, w, bias)", [x, y, v[:4].contiguous()], [c("linear", r0, r1, Ref(2))],
          torch.nn.functional.linear, atol=1e-2, rtol=1e-2)  # fmt: skip
    width = max(len(n) for n, _ in _results)
    for name, status in _results:
        print(f"{name:<{width}}  {status}")
    failed = [n for n, s in _results if s != "ok"]
    print(f"{len(_results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


def _random_checks(dev: str) -> None:
    from thunder_executors_nvfuser.runtime import philox_scalars

    x = torch.zeros(64, 64, device=dev)
    lo_hi = [c("define_scalar", 0.0, dtype=DType(F32)), c("define_scalar", 1.0, dtype=DType(F32))]
    rng_calls = [c("rng_scalar"), c("rng_scalar")]

    def uniform(fn, dtype=F32):
        return [*rng_calls, *lo_hi, c(fn, Ref(3), Ref(4), (64, 64), rng_seed=Ref(1), rng_offset=Ref(2), dtype=DType(dtype)),
                c("add", Ref(0), Ref(5))]  # fmt: skip

    check("define_scalar(None, Int) seed/offset + ops.uniform in [0, 1)", [x], uniform("uniform"),
          lambda t: None, rng=[1234, 0])  # fmt: skip
    try:
        from thunder_executors_nvfuser.emit import build_fusion

        run = build_fusion(_plan([x], uniform("uniform"), n_random=1), [x])
        a, b, d = run([x], [1234, 7])[0], run([x], [1234, 7])[0], run([x], [1234, 8])[0]
        assert torch.equal(a, b), "the same (seed, offset) drew different numbers"
        assert not torch.equal(a, d), "another offset drew the same numbers"
        assert 0 <= float(a.min()) and float(a.max()) < 1 and abs(float(a.mean()) - 0.5) < 0.05
        _results.append(("ops.uniform: same (seed, offset) -> same numbers, another offset -> others", "ok"))
    except Exception as e:
        _results.append(("ops.uniform determinism", f"FAIL {type(e).__name__}: {e}"))
    check("ops.normal", [x], uniform("normal"), lambda t: None, rng=[1234, 0])
    check("ops.uniform in BFloat16", [x.bfloat16()], uniform("uniform", BF16)[:-1] + [c("add", Ref(0), Ref(5))],
          lambda t: None, rng=[1, 0])  # fmt: skip
    try:
        torch.manual_seed(5)
        first = philox_scalars([torch.device(dev)])
        second = philox_scalars([torch.device(dev)])
        torch.manual_seed(5)
        assert philox_scalars([torch.device(dev)]) == first and first != second, (first, second)
        _results.append(("torch CUDA generator initial_seed/get_offset/set_offset", "ok"))
    except Exception as e:
        _results.append(("torch CUDA generator initial_seed/get_offset/set_offset", f"FAIL {type(e).__name__}: {e}"))


if __name__ == "__main__":
    sys.exit(main())
