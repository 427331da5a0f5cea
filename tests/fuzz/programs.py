"""Random tensor programs, generated as Python source, run eagerly and under `thunder.jit` and compared.

A program is a function of 1-3 tensor inputs with 3-12 statements drawn from elementwise ops (broadcasting,
Python scalars, type promotion), reductions, views, cat/stack, where, matmul, softmax/layer_norm, casts and
in-place ops (on intermediates, on views, on inputs that do not require grad). Inputs are float32, float64,
bfloat16, int64 or bool; 0-d, empty, transposed, strided or expanded. Each statement is kept only if eager
runs the program so far, so every generated program is one eager accepts. `generate(seed, untracked=True)` mixes
in writes autograd does not record (under `torch.no_grad()`, through `detach()` or `.data`; see
`_untracked_statement` and tests/fuzz/test_untracked_writes.py).

`check_program` compares outputs, the caller's inputs after the call (mutations), gradients of float inputs
that require grad, and a second, cached call. A jitted program may instead raise `NotImplementedError` (the
clear error Thunder gives for a feature it does not support); any other error, and any wrong value, is a
failure. `shrink` removes statements while the failure persists, and `Program.source()` is a runnable
reproducer: the program, the inputs' construction, and the comparison.
"""

from __future__ import annotations

import os
import random
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

import thunder

DEVICE = os.environ.get("THUNDER_TEST_DEVICE", "cpu")
FLOATS = (torch.float32, torch.float64, torch.bfloat16)
_DTYPE_NAMES = {
    torch.float32: "torch.float32", torch.float64: "torch.float64", torch.bfloat16: "torch.bfloat16",
    torch.int64: "torch.int64", torch.bool: "torch.bool",
}  # fmt: skip
# (atol, rtol) per result dtype: a chain of up to 12 ops in bfloat16 rounds at every step, and decompositions
# may round in another order than eager's fused kernels
TOLERANCES = {
    torch.float32: (1e-4, 1e-4), torch.float64: (1e-9, 1e-7), torch.bfloat16: (6e-2, 4e-2),
    torch.int64: (0, 0), torch.bool: (0, 0),
}  # fmt: skip
# the clear errors (NotImplementedError) jitted programs gave, by message: the fuzzer checks they stay rare
REFUSALS: Counter[str] = Counter()


@dataclass(frozen=True)
class Program:
    seed: int
    input_lines: tuple[str, ...]  # the body of make_inputs(g), ending in a list of the inputs
    n_inputs: int
    lines: tuple[str, ...]  # the body of program(...)
    outputs: tuple[str, ...] = ()
    # the least precise float dtype the program computes in: a float64 result computed from bfloat16 values
    # carries bfloat16's rounding differences
    loosest: torch.dtype = torch.float64
    # drawn with the untracked writes (see `generate`): changes how eager's backward failures are read
    untracked: bool = False

    @property
    def params(self) -> str:
        return ", ".join(f"x{i}" for i in range(self.n_inputs))

    def program_source(self) -> str:
        body = [*self.lines, f"return ({', '.join(self.outputs)},)"]
        return f"def program({self.params}):\n" + "".join(f"    {line}\n" for line in body)

    def inputs_source(self) -> str:
        body = [*self.input_lines, f"return [{self.params}]"]
        return "def make_inputs(g):\n" + "".join(f"    {line}\n" for line in body)

    def source(self) -> str:
        """A runnable reproducer."""
        return (
            f"import torch\nimport torch.nn.functional as F\nimport thunder\n\nDEVICE = {DEVICE!r}\n\n\n"
            f"{self.program_source()}\n\n{self.inputs_source()}\n\n"
            f"expected = program(*make_inputs(torch.Generator(DEVICE).manual_seed({self.seed})))\n"
            f"result = thunder.jit(program)(*make_inputs(torch.Generator(DEVICE).manual_seed({self.seed})))\n"
            "torch.testing.assert_close(result, expected, equal_nan=True)\n"
        )

    def build(self):
        """(program function, make_inputs function) compiled from the source."""
        namespace = {"torch": torch, "F": F, "DEVICE": DEVICE}
        exec(compile(self.program_source() + "\n" + self.inputs_source(), f"<fuzz program {self.seed}>", "exec"),
             namespace)  # fmt: skip
        return namespace["program"], namespace["make_inputs"]

    def make_inputs(self, make_inputs) -> list[torch.Tensor]:
        return make_inputs(torch.Generator(DEVICE).manual_seed(self.seed))


# -- inputs ---------------------------------------------------------------------------------------------------
def _random_shape(rng: random.Random) -> tuple[int, ...]:
    ndim = rng.choice((0, 1, 2, 2, 3))
    shape = [rng.choice((1, 2, 3, 4)) for _ in range(ndim)]
    if ndim and rng.random() < 0.08:
        shape[rng.randrange(ndim)] = 0  # empty
    return tuple(shape)


def _input_lines(rng: random.Random, name: str, untracked: bool = False) -> list[str]:
    """`untracked`: mostly floating inputs that require grad, what writes autograd does not record are about (x0
    always)."""
    dtype = rng.choice((torch.float32, torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool))
    if untracked and dtype not in FLOATS and (name == "x0" or rng.random() < 0.7):
        dtype = rng.choice((torch.float32, torch.float64))  # (x0 floating and requiring grad: see below)
    shape = _random_shape(rng)
    layout = rng.choice(("contiguous", "contiguous", "transposed", "strided", "expanded")) if shape else "contiguous"
    if untracked and layout == "expanded" and rng.random() < 0.7:
        # most writes into an expanded input are refused, by eager and Thunder alike (fill_ and zero_, which eager
        # allows, are refused by Thunder: see test_write_into_expanded_input_raises_eager_error)
        layout = "contiguous"
    base_shape = list(shape)
    if layout == "transposed" and len(shape) >= 2:
        base_shape[0], base_shape[1] = shape[1], shape[0]
    elif layout == "strided":
        base_shape[-1] = shape[-1] * 2
    elif layout == "expanded":
        i = rng.randrange(len(shape))
        base_shape[i] = 1
    base = f"torch.randn({tuple(base_shape)}, generator=g, dtype=torch.float64)"
    if dtype is torch.int64:
        base = f"({base} * 4).round()"
    elif dtype is torch.bool:
        base = f"({base} > 0)"
    lines = [f"{name} = {base}.to({_DTYPE_NAMES[dtype]}).to(DEVICE)"]
    if layout == "transposed" and len(shape) >= 2:
        lines.append(f"{name} = {name}.transpose(0, 1)")
    elif layout == "strided":
        lines.append(f"{name} = {name}[..., ::2]")
    elif layout == "expanded":
        lines.append(f"{name} = {name}.expand{tuple(shape)}")
    if dtype in FLOATS and (rng.random() < (0.8 if untracked else 0.5) or (untracked and name == "x0")):
        lines.append(f"{name} = {name}.detach().requires_grad_()")  # a leaf that keeps the layout
    return lines


# -- statements -------------------------------------------------------------------------------------------------
def _is_float(t) -> bool:
    return isinstance(t, torch.Tensor) and t.dtype in FLOATS


def _dim(rng, t) -> int:
    return rng.randrange(-t.ndim, t.ndim) if t.ndim else 0


_UNARY_FLOAT = ("{a}.sin()", "torch.tanh({a})", "{a}.sigmoid()", "torch.relu({a})", "torch.exp({a}.tanh())",
                "torch.sqrt({a}.abs() + 1)", "{a}.clamp(-0.5, 0.5)", "torch.log1p({a}.abs())", "{a}.square()",
                "F.gelu({a})", "{a}.reciprocal().clamp(-4, 4)", "torch.floor({a})")  # fmt: skip
_UNARY_ANY = ("{a} * 2", "{a} + 1", "{a} - 3", "2.5 * {a}", "{a} * 0.5", "-{a}", "{a}.abs()", "{a} // 2",
              "{a} % 3", "{a} + True", "{a}.float()", "{a}.double()", "{a}.long()", "{a}.bool()",
              "{a}.to(torch.bfloat16)", "{a}.to(torch.float32)", "{a}.contiguous()", "{a}.clone()",
              "{a}.to({a}.dtype)", "~{a}", "{a} > 0", "{a} == 1", "{a}.sign()")  # fmt: skip
_BINARY = ("{a} + {b}", "{a} * {b}", "{a} - {b}", "torch.maximum({a}, {b})", "{a} / ({b}.abs() + 1)",
           "torch.where({a} > {b}, {a}, {b})", "torch.where({b} > 0, {a}, 0.5)", "{a} > {b}", "{a} == {b}",
           "{a} & {b}", "{a} | {b}", "{a}.type_as({b})", "torch.add({a}, {b}, alpha=2)", "torch.minimum({a}, {b})",
           "torch.clamp({a}, min={b})", "torch.div({a}, {b}, rounding_mode='floor')", "torch.atan2({a}, {b})",
           "torch.lerp({a}, {b}, 0.3)", "torch.addcmul({a}, {a}, {b}, value=0.5)", "{a} ** 2 + {b}",
           "torch.add(True, {a}, alpha=2)", "torch.div({a}, {b}, rounding_mode='trunc')", "{a}.expand_as({b})",
           "torch.where({a} > 0, {b}, {a})", "torch.mul(3, {a}) + {b}")  # fmt: skip
_REDUCTIONS = ("{a}.sum()", "{a}.sum({d})", "{a}.sum({d}, keepdim=True)", "{a}.mean({d})", "{a}.amax({d})",
               "{a}.max({d}).values", "{a}.min({d})[0]", "{a}.argmax({d})", "{a}.prod({d})", "{a}.var({d})",
               "{a}.std()", "{a}.any()", "{a}.all({d})", "torch.cumsum({a}, {d})", "{a}.norm()", "{a}.mean()",
               "{a}.logsumexp({d})", "{a}.prod()", "{a}.cumprod({d})", "{a}.sort({d}).values", "{a}.amin()",
               "{a}.topk(1, {d}).values", "{a}.count_nonzero()", "{a}.max()", "{a}.std({d}, correction=0)")  # fmt: skip
_INPLACE = ("{a}.add_(1)", "{a}.mul_({b})", "{a}.sub_({b})", "{a}.clamp_(-1, 1)", "{a}.zero_()", "{a}.fill_(2)",
            "{a}.copy_({b})", "{a} += {b}", "{a}.relu_()", "{a}.masked_fill_({a} > 0, 0)", "{a}.mul_(0.5)",
            "{a}.div_(2)", "{a}.neg_()", "{a}.abs_()")  # fmt: skip
_INPLACE_VIEW = ("{a}[0].add_(1)", "{a}[..., :1].mul_(-1)", "{a}.t().mul_(2)", "{a}.view(-1)[:2].zero_()",
                 "{a}[0] = 1", "{a}[..., 1:] = 0.5", "{a}.unsqueeze(0).add_(1)", "{a}.transpose(0, -1).sub_(1)",
                 "{a}[[0, 0]] = 3", "{a}[torch.tensor([0], device={a}.device)].add_(100)",
                 "{a}.reshape(-1).add_(1)",
                 "{a}.t().contiguous().add_(7)", "{a}.float().add_(1)", "{a}.to({a}.dtype).mul_(3)",
                 "{a}.split(1)[0].mul_(2)", "{a}.unbind(0)[-1].zero_()", "{a}.chunk(2, -1)[0].add_(1)",
                 "{a}.T.sub_(1)", "{a}.type_as({a}).add_(2)", "{a}.contiguous().fill_(0)", "{a}.copy_(2)",
                 "{a}.index_fill_(0, torch.tensor([0], device={a}.device), -1)",
                 "{a}[0, ...] = {a}[-1, ...] * 2")  # fmt: skip


def _view_expr(rng, a: str, t: torch.Tensor) -> str:
    options = ["{a}.view(-1)", "{a}.reshape(-1)", "{a}.unsqueeze({d0})", "{a}.flatten()", "{a}.squeeze()",
               "{a}[None]", "{a}[[0, 0]]", "{a}[torch.tensor([0], device={a}.device)]", "{a}.detach()",
               "{a}.clone().t()", "{a}.index_select(0, torch.tensor([0, 0], device={a}.device))",
               "{a}.repeat(2, *[1] * {a}.ndim)"]  # fmt: skip
    if t.ndim >= 1:
        options += ["{a}[1:]", "{a}[..., ::2]", "{a}[0]", "{a}.narrow({d}, 0, 1)", "{a}.flip({d})"]
        options += [f"{{a}}.unsqueeze(0).expand(2, *{tuple(t.shape)})", "{a}.unsqueeze(-1).expand(*{a}.shape, 2)"]
    if t.ndim >= 2:
        options += ["{a}.transpose(0, 1)", "{a}.mT", "{a}.permute(*reversed(range({a}.ndim)))", "{a}[:, 1]",
                    f"{{a}}.reshape({t.shape[-1]}, -1)", f"{{a}}.view({t.shape[0]}, -1)"]  # fmt: skip
    if t.ndim <= 2:
        options.append("{a}.t()")
    return rng.choice(options).format(a=a, d=_dim(rng, t), d0=rng.randrange(0, t.ndim + 1))


def _cat_or_matmul(rng, a: str, t: torch.Tensor, b: str, u: torch.Tensor) -> str:
    options = [f"torch.cat([{a}, {a} * 2], {_dim(rng, t)})", f"torch.stack([{a}, {b}])" if t.shape == u.shape else
               f"torch.stack([{a}, -{a}], {rng.randrange(0, t.ndim + 1)})", f"torch.hstack([{a}, {a}])"]  # fmt: skip
    if t.ndim >= 1 and t.dtype in FLOATS:
        options += [f"{a} @ {a}.mT" if t.ndim >= 2 else f"{a} @ {a}", f"torch.softmax({a}, {_dim(rng, t)})",
                    f"F.log_softmax({a}, dim={_dim(rng, t)})", f"F.layer_norm({a}, {a}.shape[-1:])"]  # fmt: skip
        if u.ndim >= 1 and u.dtype == t.dtype and u.shape[-1] == t.shape[-1]:
            flat_b = f"{b}.reshape(-1, {t.shape[-1]}).mT"
            options.append(f"{a} @ {b}.mT" if t.ndim >= 2 and u.ndim >= 2 else f"torch.matmul({a}, {flat_b})")
    return rng.choice(options)


# writes autograd does not record: under torch.no_grad(), through `detach()` or `.data`. `{w}` is the written
# tensor (or a view of it), `{a}` the named value it came from, `{b}` an operand
_UNTRACKED_WRITES = ("{w}.add_(1)", "{w}.mul_({b})", "{w}.sub_({b})", "{w}.clamp_(-1, 1)", "{w}.zero_()",
                     "{w}.fill_(2)", "{w}.copy_({b})", "{w} += {b}", "{w}.mul_(0.5)", "{w}.neg_()", "{w}.abs_()",
                     "{w}.masked_fill_({w} > 0, 0)", "{w}.copy_({b} * 2)", "{w}.fill_({b}.sum())",
                     "{w}[0] = 1", "{w}[..., 1:] = 0.5", "{w}[0] = {b}[0]", "{w}[[0, 0]] = 3",
                     "{w}[0].add_(1)", "{w}[..., :1].mul_(-1)", "{w}.t().mul_(2)", "{w}.view(-1)[:2].zero_()",
                     "{w}.unsqueeze(0).add_(1)", "{w}.transpose(0, -1).sub_(1)", "{w}.reshape(-1).add_(1)",
                     "{w}.split(1)[0].mul_(2)", "{w}.unbind(0)[-1].zero_()", "{w}.chunk(2, -1)[0].copy_({b})",
                     "{w}[1:].t()[0].fill_(-1)", "{w}.T[..., 1:].zero_()", "{w}.copy_(2)",
                     "{w}.index_fill_(0, torch.tensor([0], device={w}.device), -1)")  # fmt: skip
# how the write escapes autograd; `{a}` stands for the written value, which may itself be a view
_UNTRACKED_FORMS = ("with torch.no_grad(): {write}", "with torch.no_grad(): {write}", "{write_detach}",
                    "{write_data}", "with torch.no_grad(): {write_view}", "{write_view_detach}",
                    "{write_view_data}", "with torch.no_grad(): {target} = {a}[0]; {target}.add_(1)",
                    "{target} = {a}.data", "{target} = {a}.detach()",
                    "with torch.no_grad(): {target} = {a} * 2")  # fmt: skip


def _clone_if_shared(rng: random.Random, b: str, t: torch.Tensor, u: torch.Tensor) -> str:
    """The operand `b` (`u`) of a write into `t`, cloned three times in four where they share memory. An in-place
    op whose operand overlaps the written memory otherwise than element for element (`x.sub_(x[0])`) gives in
    eager a result that depends on the order its kernel visits the elements (eager refuses some such calls, not
    all), and Thunder refuses it (NotImplementedError): the untracked writes make many aliases, and the fuzzer
    must mostly compare results."""
    if not (isinstance(t, torch.Tensor) and isinstance(u, torch.Tensor)):
        return b
    shared = t.untyped_storage().data_ptr() == u.untyped_storage().data_ptr()
    return f"{b}.clone()" if shared and rng.random() < 0.75 else b


def _untracked_statement(rng: random.Random, env: dict[str, torch.Tensor], target: str, a: str, b: str) -> str:
    """A write autograd does not record into `a` (through a view of it at times), or a value made without
    autograd (a `.data`/`detach()` alias to write through later, a value computed under no_grad)."""
    write = rng.choice(_UNTRACKED_WRITES)
    view = rng.choice(("{a}[0]", "{a}[1:]", "{a}.t()", "{a}.view(-1)", "{a}[..., ::2]", "{a}.unsqueeze(0)",
                       "{a}.transpose(0, -1)", "{a}[0][1:]", "{a}.t()[1:]", "{a}.view(-1)[1:]"))  # fmt: skip
    form = rng.choice(_UNTRACKED_FORMS)
    written = {"write": "{a}", "write_detach": "{a}.detach()", "write_data": "{a}.data", "write_view": view,
               "write_view_detach": view + ".detach()", "write_view_data": view + ".data"}  # fmt: skip
    fields = {key: write.format(w=w, b="{b}") for key, w in written.items()}
    return form.format(**fields, target=target, a="{a}", b="{b}").format(a=a, b=b)


def _statement(
    rng: random.Random, env: dict[str, torch.Tensor], target: str, untracked: list[str] | None = None
) -> str:
    """A statement; `untracked` (the names written without autograd so far, None: no such writes): draw writes
    autograd does not record too, and use the tensors they wrote in later statements."""
    names = list(env)
    a = rng.choice(names[-4:] if rng.random() < 0.6 else names)
    if untracked is not None:
        if untracked and rng.random() < 0.4:
            a = rng.choice(untracked)  # a later (grad-mode or untracked) use of a tensor written without autograd
        if rng.random() < 0.35:
            if rng.random() < 0.3:  # the inputs (that may require grad) are the interesting targets
                a = rng.choice([n for n in names if n.startswith("x")])
            b = rng.choice(names)
            b = _clone_if_shared(rng, b, env[a], env[b])  # (b may be a, written through a view of a)
            return _untracked_statement(rng, env, target, a, b)
    b = rng.choice(names)
    t, u = env[a], env[b]
    kind = rng.choices(("unary", "binary", "reduce", "view", "catmm", "inplace", "inplace_view"),
                       weights=(3, 4, 2, 3, 2, 2, 2))[0]  # fmt: skip
    if kind == "unary":
        template = rng.choice(_UNARY_FLOAT if _is_float(t) and rng.random() < 0.6 else _UNARY_ANY)
        return f"{target} = " + template.format(a=a)
    if kind == "binary":
        return f"{target} = " + rng.choice(_BINARY).format(a=a, b=b)
    if kind == "reduce":
        return f"{target} = " + rng.choice(_REDUCTIONS).format(a=a, d=_dim(rng, t))
    if kind == "view":
        return f"{target} = " + _view_expr(rng, a, t)
    if kind == "catmm":
        return f"{target} = " + _cat_or_matmul(rng, a, t, b, u)
    if kind == "inplace":
        if untracked is not None and b != a:
            b = _clone_if_shared(rng, b, t, u)
        return rng.choice(_INPLACE).format(a=a, b=b)
    return rng.choice(_INPLACE_VIEW).format(a=a)


# -- running ------------------------------------------------------------------------------------------------
def _run_prefix(input_lines, n_inputs, lines, seed) -> dict[str, torch.Tensor] | None:
    """Every named tensor after running the statements eagerly, or None if eager rejects them."""
    namespace = {"torch": torch, "F": F, "DEVICE": DEVICE, "g": torch.Generator(DEVICE).manual_seed(seed)}
    try:
        exec("\n".join([*input_lines, *lines]), namespace)
    except Exception:
        return None
    return {k: v for k, v in namespace.items() if isinstance(v, torch.Tensor) and k[0] in "xv" and k[1:].isdigit()}


def generate(seed: int, untracked: bool = False) -> Program:
    """A random program that eager runs, forward and backward.

    `untracked`: with writes autograd does not record as well (see `_untracked_statement`), mixed with the other
    statements; the programs differ from those of the same seed without it. Eager's backward may then fail where
    a value saved for backward was written in place (eager's version counter check): such a program is kept, and
    its forward values and inputs are compared, not its gradients (see `_eager_result`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _generate(seed, untracked)


_NAME = re.compile(r"\b[xv]\d+\b")


def _generate(seed: int, untracked: bool = False) -> Program:
    rng = random.Random(seed)
    for _ in range(50):
        n_inputs = rng.choice((1, 2, 2, 3))
        input_lines = [line for i in range(n_inputs) for line in _input_lines(rng, f"x{i}", untracked)]
        n_statements = rng.randint(3, 12)
        lines: list[str] = []
        env = _run_prefix(input_lines, n_inputs, lines, seed)
        written: list[str] | None = [] if untracked else None  # names an untracked write touched
        for _attempt in range(n_statements * 8):
            if len(lines) == n_statements:
                break
            line = _statement(rng, env, f"v{len(lines)}", written)
            new_env = _run_prefix(input_lines, n_inputs, [*lines, line], seed)
            if new_env is not None:
                lines.append(line)
                env = new_env
                if written is not None and _is_untracked(line):
                    written += [n for n in _NAME.findall(line) if n in env and n not in written]
        produced = [k for k in env if k.startswith("v")]
        outputs = produced[-rng.randint(1, 3):] if produced else []  # fmt: skip
        outputs += [k for k in env if k.startswith("x") and rng.random() < 0.2]
        if written:  # the values written without autograd, returned: their data, requires_grad and gradients
            outputs += [k for k in written if k.startswith("v") and k not in outputs and rng.random() < 0.5][:2]
        dtypes = {t.dtype for t in env.values()}
        loosest = next((d for d in (torch.bfloat16, torch.float32) if d in dtypes), torch.float64)
        program = Program(
            seed, tuple(input_lines), n_inputs, tuple(lines), tuple(outputs or ["x0"]), loosest, untracked
        )
        if len(lines) >= 3 and _eager_result(program) is not None:
            return program
    raise RuntimeError(f"could not generate a valid program from seed {seed}")


def _is_untracked(line: str) -> bool:
    return "no_grad" in line or ".data" in line or ".detach()" in line


@dataclass
class _Result:
    outputs: list
    inputs: list
    grads: list | None = field(default=None)
    # False where eager's gradients are not a reference (see `_eager_result`): they are not compared
    grads_comparable: bool = True


def _backward(outputs, inputs) -> list | None:
    """Gradients of sum(out * cotangent) over the outputs that require grad, for the inputs that are leaves requiring
    grad. (An input that did not require grad, written in place with a value that does, is part of eager's graph
    after the call, not of Thunder's: a known difference, see tests/README.md. Its gradients are not asked for.)"""
    leaves = [x for x in inputs if x.requires_grad and x.is_leaf]
    outs = [o for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad]
    if not leaves or not outs:
        return None
    cotangents = [torch.linspace(-1, 1, o.numel(), dtype=torch.float64).reshape(o.shape).to(o) for o in outs]
    grads = torch.autograd.grad(outs, leaves, cotangents, allow_unused=True)
    return [None if g is None else g.detach() for g in grads]


_SAVED_VALUE_WRITTEN = "modified by an inplace operation"  # eager's error at backward


def _eager_result(program: Program) -> _Result | None:
    """Eager's outputs, inputs after the call and gradients; None if eager rejects the program.

    Programs with untracked writes (`program.untracked`) whose eager backward fails because a value saved for
    backward was written in place are kept without gradients to compare: the forward is eager's, and Thunder may
    return gradients there (of the program as written, from the values before the write) or raise. So are those
    whose writes through `.data` eager's backward does not see: `.data`, unlike `detach()`, does not share the
    tensor's version counter, and eager silently differentiates with the overwritten saved values (the
    documented hazard of `.data`). The program with `detach()` in place of `.data` tells them: its backward fails.
    """
    fn, make_inputs = program.build()
    try:
        inputs = program.make_inputs(make_inputs)
        outputs = list(fn(*inputs))
    except Exception:
        return None
    try:
        return _Result(outputs, inputs, _backward(outputs, inputs))
    except RuntimeError as e:
        if not (program.untracked and _SAVED_VALUE_WRITTEN in str(e)):
            return None
        return _Result(outputs, inputs, None, grads_comparable=False)
    except Exception:
        return None


def _data_hides_a_saved_value_write(program: Program) -> bool:
    """Whether eager's backward misses a write through `.data` into a value saved for backward (see
    `_eager_result`)."""
    if not any(".data" in line for line in program.lines):
        return False
    augmented = (re.sub(r"^(.*)\.data \+= (.*)$", r"\1.detach().add_(\2)", line) for line in program.lines)
    lines = tuple(re.sub(r"\.data\b", ".detach()", line) for line in augmented)
    with_detach = _eager_result(replace(program, lines=lines))
    return with_detach is None or not with_detach.grads_comparable


def _compare(kind: str, got, want, loosest: torch.dtype) -> str | None:
    if isinstance(want, torch.Tensor) != isinstance(got, torch.Tensor):
        return f"{kind}: jit gave {type(got).__name__}, eager {type(want).__name__}"
    if not isinstance(want, torch.Tensor):
        return None if got == want else f"{kind}: jit {got!r}, eager {want!r}"
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"{kind}: jit {got.dtype}{list(got.shape)}, eager {want.dtype}{list(want.shape)}"
    if kind.startswith("output") and got.requires_grad != want.requires_grad:
        return f"{kind}: jit requires_grad={got.requires_grad}, eager {want.requires_grad}"
    atol, rtol = TOLERANCES.get(want.dtype, (1e-5, 1e-5))
    if want.dtype.is_floating_point:
        atol, rtol = max(atol, TOLERANCES[loosest][0]), max(rtol, TOLERANCES[loosest][1])
    try:
        torch.testing.assert_close(got.detach().cpu(), want.detach().cpu(), atol=atol, rtol=rtol, equal_nan=True)
    except AssertionError as e:
        return f"{kind}: {str(e).splitlines()[0]} {' '.join(str(e).splitlines()[1:4])}"
    return None


def check_program(program: Program, executors=None) -> str | None:
    """None if thunder.jit (with `executors`, None: the defaults) matches eager on the program (or refuses it with
    NotImplementedError), else why not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager's own warnings (std with no degrees of freedom), raised twice
        return _check_program(program, executors)


def _check_program(program: Program, executors) -> str | None:
    expected = _eager_result(program)
    if expected is None:
        return None  # eager rejects it (a shrunk variant): nothing to compare
    if expected.grads_comparable and program.untracked and _data_hides_a_saved_value_write(program):
        expected.grads_comparable = False
    fn, make_inputs = program.build()
    jfn = thunder.jit(fn, executors=executors)
    for call in ("first call", "second (cached) call"):
        try:
            inputs = program.make_inputs(make_inputs)
            outputs = list(jfn(*inputs))
            grads = _backward(outputs, inputs) if expected.grads_comparable else None
        except NotImplementedError as e:
            REFUSALS[str(e).split(" at ")[0][:100]] += 1
            return None  # a clear refusal of an unsupported feature
        except Exception as e:
            return f"{call}: {type(e).__name__}: {e}"
        pairs = [(f"output {i}", o, e) for i, (o, e) in enumerate(zip(outputs, expected.outputs))]
        pairs += [(f"input x{i} after the call", x, e) for i, (x, e) in enumerate(zip(inputs, expected.inputs))]
        if expected.grads_comparable and (grads is None) != (expected.grads is None):
            return f"{call}: gradients: jit {'none' if grads is None else 'some'}, eager the opposite"
        pairs += [(f"gradient {i}", g, e) for i, (g, e) in enumerate(zip(grads or [], expected.grads or []))]
        for kind, got, want in pairs:
            if got is None or want is None:
                if (got is None) != (want is None):
                    return f"{call}: {kind}: jit {got is None and 'None'}, eager {want is None and 'None'}"
                continue
            mismatch = _compare(kind, got, want, program.loosest)
            if mismatch:
                return f"{call}: {mismatch}"
    if thunder.cache_hits(jfn) < 1:
        return "the second call with inputs of the same metadata was not a cache hit"
    return None


def shrink(program: Program, executors=None) -> Program:
    """A smaller program that still fails: statements and outputs removed one at a time while it does."""
    changed = True
    while changed:
        changed = False
        for i in reversed(range(len(program.lines))):
            candidate = replace(program, lines=program.lines[:i] + program.lines[i + 1 :])
            if _eager_result(candidate) is not None and check_program(candidate, executors) is not None:
                program, changed = candidate, True
        for i in reversed(range(len(program.outputs))):
            if len(program.outputs) > 1:
                candidate = replace(program, outputs=program.outputs[:i] + program.outputs[i + 1 :])
                if check_program(candidate, executors) is not None:
                    program, changed = candidate, True
    return program


def check_seeds(seeds, untracked: bool = False, max_failures: int = 3) -> None:
    """Generates and checks the program of each seed; fails with the shrunk reproducers of the first
    `max_failures` mismatches, or when more than a tenth of the programs were refused (a clear refusal passes,
    but the fuzzer must mostly compare results)."""
    failures = []
    refused_before = sum(REFUSALS.values())
    label = " (untracked writes)" if untracked else ""
    for seed in seeds:
        mismatch = check_program(generate(seed, untracked=untracked))
        if mismatch is not None:
            program = shrink(generate(seed, untracked=untracked))
            still = check_program(program) or mismatch
            failures.append(f"seed {seed}{label}: {still}\n--- reproducer (shrunk) ---\n{program.source()}")
            if len(failures) >= max_failures:
                break
    assert not failures, "\n\n".join(failures)
    refused = sum(REFUSALS.values()) - refused_before
    assert refused <= max(2, len(seeds) // 10), f"{refused} of {len(seeds)} programs refused: {dict(REFUSALS)}"
