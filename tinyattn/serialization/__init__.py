"""save / load: PyTorch's torch.save / torch.load, with checkpoints that never run code when loaded.

What `load(f)` (weights_only, the default as in PyTorch >= 2.6) gives back is what `torch.load(weights_only=True)`
accepts: None, bool, int, float, complex, str, bytes, bytearray, lists, tuples, sets, dicts, OrderedDicts and
Counters (keys: None, bool, int, float, complex, str, bytes or tuples of them), tensors and Parameters (dtype,
shape, requires_grad and device kept), Size, dtypes and devices; besides, as tinyattn's own optimiser and
scheduler state dicts hold them, NumPy arrays and NumPy scalars of numeric dtypes. Types round-trip exactly: a
tuple stays a tuple, an OrderedDict an OrderedDict, an int an int, a 0-d tensor a 0-d tensor.

The file is a zip archive of uncompressed members (an .npz that `np.load(path, allow_pickle=False)` opens):
  structure.json    {"format": "tinyattn.checkpoint", "version": 2, "arrays": [...], "root": node, ...}
  arrays/<i>.npy    one plain .npy member per stored array (its data 64-byte aligned in the file, for mmap=True)
Scalars, strings and containers live in the JSON tree; each tensor or array is a node naming its .npy member.
A tensor that appears twice (the same object, or two tensors over the same memory such as nanoGPT's tied
wte/lm_head weights in a state_dict) is stored once; loading gives tensors that share that memory again, as
torch.load does. Other views are saved by value (only the elements they show, not the storage behind them).

Anything else (a whole nn.Module, a dataclass, an argparse.Namespace) can be saved too: the whole object then
goes into one more member, object.pkl, pickled, its tensors still stored as .npy members. Loading such a file
with weights_only=True (or None) unpickles it with only the globals allowed by add_safe_globals (PyTorch's
allowlist; a few builtins such as OrderedDict are always allowed), and refuses any other with a
pickle.UnpicklingError naming it. weights_only=False unpickles anything, and so can run arbitrary code: only
for files you trust.

Loading accepts only what tinyattn writes (members it names, stored uncompressed, .npy arrays of dtypes tensors
hold, exact JSON types, sizes within the file); anything else is a ValueError naming the file and the entry, the
cause chained. Checkpoints of the earlier format (an .npz whose entries are named "key/sub::kind") still load.

`save` to a path checks and encodes everything before the file is touched, then writes a temporary file
beside the target (".<name>.tinyattn-tmp-<host>-<pid>-<random>", locked while it is written), flushes it to
disk and renames it over the target, so that a crash mid-save leaves the previous checkpoint intact. A save
killed outright leaves its temporary file; the next save to the same target removes those that no live save
holds (see _save._remove_stale_temporaries). A new checkpoint gets the usual permissions (0666 less the umask); an
overwritten one keeps its own. `f` may also be a binary file object (io.BytesIO, an open file): written in
place, not atomically, as PyTorch does.

Files are not interchangeable with PyTorch's: torch.load cannot read these, nor tinyattn.load PyTorch's.
"""
from ._load import add_safe_globals, clear_safe_globals, get_safe_globals, load, safe_globals
from ._save import save

__all__ = ["save", "load", "add_safe_globals", "clear_safe_globals", "get_safe_globals", "safe_globals"]
