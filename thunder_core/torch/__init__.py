"""`thunder.torch` (conventionally `ltorch`): one symbol per supported torch operation, same name and
signature as torch's, decomposing into `thunder.prims`.

Each family lives in its own module (elementwise, reductions, shapes, indexing, creation, linalg, nn,
nn_losses, nn_spatial); importing this package registers them all. `torch_handler(fn)` gives the callable
that traces a torch callable.
"""

from __future__ import annotations

import torch

from thunder.torch import (
    creation,  # noqa: F401,E402
    elementwise,  # noqa: F401,E402  (registers symbols)
    indexing,  # noqa: F401,E402
    linalg,  # noqa: F401,E402
    nn,  # noqa: F401,E402
    nn_losses,  # noqa: F401,E402
    nn_spatial,  # noqa: F401,E402
    reductions,  # noqa: F401,E402
    shapes,  # noqa: F401,E402
)
from thunder.torch.base import (  # noqa: F401
    TORCH_HANDLERS,
    is_inplace_name,
    register_handler,
    torch_handler,
    torchsymbol,
)
from thunder.torch.creation import *  # noqa: F401,F403,E402
from thunder.torch.elementwise import *  # noqa: F401,F403,E402
from thunder.torch.elementwise import SYMBOLIC_SCALAR_FNS as _ELEMENTWISE_SYMBOLIC  # noqa: E402
from thunder.torch.indexing import *  # noqa: F401,F403,E402
from thunder.torch.linalg import *  # noqa: F401,F403,E402
from thunder.torch.nn import *  # noqa: F401,F403,E402
from thunder.torch.nn_losses import *  # noqa: F401,F403,E402
from thunder.torch.nn_spatial import *  # noqa: F401,F403,E402
from thunder.torch.reductions import *  # noqa: F401,F403,E402
from thunder.torch.shapes import *  # noqa: F401,F403,E402
from thunder.torch.views import *  # noqa: F401,F403,E402

# torch callables whose scalar operands may stay number proxies (see thunder.torch.elementwise)
SYMBOLIC_SCALAR_FNS = _ELEMENTWISE_SYMBOLIC | frozenset({torch.full, torch.full_like, torch.Tensor.new_full})
