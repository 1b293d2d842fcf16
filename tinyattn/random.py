"""Random number generators with PyTorch's names: Generator, default_generator, manual_seed, seed, ...

A `Generator` wraps a NumPy bit generator (PCG64); every random function in tinyattn (rand, randn,
randint, randperm, multinomial, normal, bernoulli, dropout, the in-place fills such as normal_ and
nn.init) takes `generator=` and otherwise draws from `default_generator`. The same seed gives the
same values on every run and platform; the values are not PyTorch's (its stream is Philox/MT19937
with its own transforms).

    g = ta.Generator().manual_seed(1337)       # manual_seed returns the generator, as in PyTorch
    ta.randperm(10, generator=g)
    state = ta.get_rng_state()                 # a uint8 tensor; set_rng_state(state) restores it

Like PyTorch, a new Generator() starts from the fixed seed 67280421310721, and the default
generator from a seed drawn from the OS at import (PyTorch >= 2.x does the same on the CPU):
call manual_seed for reproducible runs.

`default_generator()` (calling the object) returns its NumPy generator: tinyattn's own code uses it
to draw host arrays.
"""
import contextlib
import operator
import struct

import numpy as np

__all__ = [
    "default_generator", "fork_rng", "Generator", "get_rng_state", "initial_seed", "manual_seed", "RandomArgumentError",
    "seed", "set_rng_state",
]

_UINT64 = 1 << 64
_DEFAULT_SEED = 67280421310721  # PyTorch's seed for a new torch.Generator()
_MAGIC = b"taRNG1"
# state layout: magic, PCG64 state (128-bit), increment (128-bit), has_uint32, uinteger, initial seed
_STATE = struct.Struct("<6s16s16sBIQ")


class RandomArgumentError(ValueError, RuntimeError):
    """A bad argument to a random function (a probability outside [0, 1], std < 0, low >= high, ...):
    PyTorch raises RuntimeError for these, tinyattn's convention for bad input is ValueError; this is both."""


def _check_seed(op, seed):
    """The seed as an int in [0, 2**64): ints in [-2**63, 2**64) are taken mod 2**64, as PyTorch does."""
    try:
        value = operator.index(seed)  # Python and numpy ints (and bools, as in PyTorch)
    except TypeError:
        raise TypeError(f"{op}: seed must be an int, got {seed!r} of type {type(seed).__name__}") from None
    if not -(1 << 63) <= value < _UINT64:
        raise ValueError(f"{op}: seed must be in [-2**63, 2**64), got {value}")
    return value % _UINT64


def _fresh_seed():
    """A nondeterministic 64-bit seed from the OS (what torch.seed() picks)."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])


class Generator:
    """A random number generator (PyTorch's torch.Generator): manual_seed, seed, initial_seed,
    get_state and set_state. `device` is recorded ('cpu' or 'cuda'); tinyattn draws every random
    number on the host and copies it to the tensor's device, so one seed gives the same values on both."""

    def __init__(self, device="cpu"):
        from .cuda import device as Device  # (random.py sits below everything else; cuda.py imports nothing heavy)
        self.device = Device(device if device is not None else "cpu")
        self._seed = _DEFAULT_SEED
        self._rng = np.random.Generator(np.random.PCG64(_DEFAULT_SEED))

    def manual_seed(self, seed):
        """Reseed (an int in [-2**63, 2**64); negative seeds wrap modulo 2**64); returns self."""
        value = _check_seed("manual_seed", seed)
        self._rng = np.random.Generator(np.random.PCG64(value))
        self._seed = value
        return self

    def seed(self):
        """Reseed from the OS and return the new seed."""
        value = _fresh_seed()
        self.manual_seed(value)
        return value

    def initial_seed(self):
        """The seed this generator was last seeded with."""
        return self._seed

    def get_state(self):
        """The whole state as a uint8 tensor (an opaque encoding; set_state takes it back exactly)."""
        from .tensor import Tensor
        s = self._rng.bit_generator.state
        raw = _STATE.pack(_MAGIC, s["state"]["state"].to_bytes(16, "little"), s["state"]["inc"].to_bytes(16, "little"),
                          int(s["has_uint32"]), int(s["uinteger"]), self._seed)
        return Tensor._wrap(np.frombuffer(raw, dtype=np.uint8).copy())

    def set_state(self, new_state):
        """Restore a state from get_state(); returns self."""
        from .autograd import Variable
        if not isinstance(new_state, Variable):
            raise TypeError(f"expected a torch.ByteTensor, but got {type(new_state).__name__}")
        array = np.asarray(new_state.numpy())
        if array.dtype != np.uint8:
            raise TypeError(f"set_state: expected a uint8 (ByteTensor) state, got dtype {array.dtype}")
        if array.ndim != 1 or array.size != _STATE.size or array[:len(_MAGIC)].tobytes() != _MAGIC:
            raise RuntimeError(f"set_state: expected a tinyattn generator state of {_STATE.size} bytes (from "
                               f"get_state()), got a tensor of shape {tuple(array.shape)}")
        magic, state, inc, has_uint32, uinteger, seed = _STATE.unpack(array.tobytes())
        bit = np.random.PCG64()
        bit.state = {"bit_generator": "PCG64", "state": {"state": int.from_bytes(state, "little"),
                                                         "inc": int.from_bytes(inc, "little")},
                     "has_uint32": has_uint32, "uinteger": uinteger}
        self._rng = np.random.Generator(bit)
        self._seed = seed
        return self

    def __call__(self):
        """The NumPy generator behind this one (tinyattn's internal way to draw host arrays)."""
        return self._rng

    def __repr__(self):
        return f"<tinyattn.Generator object at {id(self):#x} (device={self.device.type!r})>"


def numpy_rng(generator, op="random"):
    """The NumPy generator to draw from: the default one when `generator` is None.

    For the library's own modules (creation, nn.init, generation, utils.data): not public API, not in
    __all__. `op` names the caller in the TypeError raised for anything but a Generator."""
    if generator is None:
        return default_generator._rng
    if isinstance(generator, Generator):
        return generator._rng
    if isinstance(generator, np.random.Generator):  # tinyattn's older API took NumPy generators
        return generator
    raise TypeError(f"{op}(): argument 'generator' must be a tinyattn.Generator, not {type(generator).__name__}")


default_generator = Generator()
default_generator.seed()  # PyTorch seeds its default CPU generator from the OS at startup


def manual_seed(seed):
    """Reseed the default generator, so that runs are reproducible; returns it (PyTorch's manual_seed).

    The seed is an int in [-2**63, 2**64), PyTorch's range; a negative seed is taken modulo 2**64
    as PyTorch does (-1 seeds as 2**64 - 1), so it is as reproducible as any other.
    """
    return default_generator.manual_seed(seed)


def seed():
    """Reseed the default generator from the OS; returns the seed."""
    return default_generator.seed()


def initial_seed():
    """The default generator's last seed."""
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state (a uint8 tensor)."""
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restore the default generator's state from get_rng_state()."""
    default_generator.set_state(new_state)


@contextlib.contextmanager
def fork_rng(devices=None, enabled=True, _caller="fork_rng", _devices_kw="devices", device_type="cuda"):
    """Inside the block, the default generator may be used freely; its state is restored on exit."""
    if not enabled:
        yield
        return
    state = default_generator.get_state()
    try:
        yield
    finally:
        default_generator.set_state(state)
