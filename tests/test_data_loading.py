"""tinyattn.utils.data against torch.utils.data: datasets, samplers, DataLoader (batches, len, errors,
collation, reproducibility) and worker processes (same batches as in-process loading, seeding,
get_worker_info, errors raised again in the main process, shutdown)."""
import collections
import itertools
import multiprocessing
import os
import time
import warnings

import numpy as np
import pytest

import tinyattn as ta
import tinyattn.utils.data as tud
from tinyattn.utils.data import (
    BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset, RandomSampler, SequentialSampler, SubsetRandomSampler, TensorDataset, WeightedRandomSampler, default_collate, default_convert, get_worker_info,
    random_split,
)

torch = pytest.importorskip("torch")
tdata = torch.utils.data


# ---- module-level datasets (worker processes started by 'spawn' import them by name) --------------------------


class Squares(Dataset):
    """i -> (tensor([i, i*i]), i): a map-style dataset with a len()."""

    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return ta.tensor([float(i), float(i * i)]), i


class WhoAmI(Dataset):
    """Each sample says which worker made it, with that worker's seed and a draw from its default generator."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        wid = -1 if info is None else info.id
        seed = -1 if info is None else info.seed
        return {"i": i, "worker": wid, "seed": seed, "draw": ta.rand(1).item()}


class Faulty(Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        if i == 7:
            raise ValueError("sample 7 is broken")
        return i


class Dies(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        os._exit(3)  # a worker that dies without a word (killed, out of memory, ...)


class Stream(IterableDataset):
    """0 .. n-1, split between workers by get_worker_info (PyTorch's documented pattern)."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        if info is None:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))

    def __len__(self):
        return self.n


class NoLenStream(IterableDataset):
    def __iter__(self):
        return iter(range(5))


def _plain(x):
    """A collated structure as plain Python for comparing with torch's: tensors -> ('T', dtype, values)."""
    if isinstance(x, (ta.Tensor, torch.Tensor)):
        return ("T", str(x.dtype).split(".")[-1], x.tolist())
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return ("namedtuple", type(x).__name__, [_plain(v) for v in x])
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_plain(v) for v in x])
    return x


def _both(L):
    return (ta, tud) if L == "ta" else (torch, tdata)


def _ids(loader):
    return [b.tolist() for b in loader]


def _no_children():
    deadline = time.time() + 5
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


# ---- datasets --------------------------------------------------------------------------------------------


def test_datasets_behave_as_pytorchs():
    for L, D in (_both("ta"), _both("torch")):
        x = L.arange(10)
        ds = D.TensorDataset(x, x * 2)
        cat = ds + D.TensorDataset(L.arange(3) + 100, L.arange(3))
        assert isinstance(cat, D.ConcatDataset) and len(cat) == 13
        assert [int(cat[i][0]) for i in (0, 9, 10, 12, -1, -13)] == [0, 9, 100, 102, 102, 0]
        with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
            cat[-14]
        sub = D.Subset(ds, [4, 1])
        assert len(sub) == 2 and int(sub[0][1]) == 8 and int(sub[1][0]) == 1
        with pytest.raises(AssertionError, match="Size mismatch between tensors"):
            D.TensorDataset(L.arange(3), L.arange(4))
        with pytest.raises(AssertionError, match="empty"):
            D.ConcatDataset([])
    chained = Stream(2) + Stream(3)
    assert list(chained) == [0, 1, 0, 1, 2] and len(chained) == 5 and isinstance(chained, tud.ChainDataset)
    with pytest.raises(IndexError):
        ConcatDataset([Squares(2), Squares(3)])[5]
    with pytest.raises(NotImplementedError):
        Dataset()[0]


def test_random_split_lengths_match_pytorch_and_reproduce():
    for lengths in ([0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [3, 7], [1.0, 0.0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = random_split(Squares(10), lengths, generator=ta.Generator().manual_seed(0))
            theirs = tdata.random_split(range(10), lengths, generator=torch.Generator().manual_seed(0))
        assert [len(s) for s in ours] == [len(s) for s in theirs]
        assert sorted(itertools.chain(*(s.indices for s in ours))) == list(range(10))
    again = random_split(Squares(10), [0.5, 0.5], generator=ta.Generator().manual_seed(0))
    assert again[0].indices == random_split(Squares(10), [5, 5], generator=ta.Generator().manual_seed(0))[0].indices
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(Squares(3), [1.0, 0.0])
    for L, D in (_both("ta"), _both("torch")):
        with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
            D.random_split(range(10), [3, 3])
        with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
            D.random_split(range(10), [1.5, -0.5])


# ---- samplers ---------------------------------------------------------------------------------------------


def test_samplers_deterministic_parts_match_pytorch():
    for n, bs, drop in ((10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True)):
        ours = list(BatchSampler(SequentialSampler(range(n)), bs, drop))
        theirs = list(tdata.BatchSampler(tdata.SequentialSampler(range(n)), bs, drop))
        assert ours == theirs
        assert len(BatchSampler(range(n), bs, drop)) == len(tdata.BatchSampler(range(n), bs, drop)) == len(ours)
    for kwargs, error in [({"batch_size": 0, "drop_last": False}, ValueError),
                          ({"batch_size": True, "drop_last": False}, ValueError),
                          ({"batch_size": 2, "drop_last": 1}, ValueError)]:
        for S in (BatchSampler, tdata.BatchSampler):
            with pytest.raises(error):
                S(range(3), **kwargs)
    for kwargs, error in [({"replacement": 1}, TypeError), ({"num_samples": 0}, ValueError),
                          ({"num_samples": 2.5}, ValueError)]:
        for S in (RandomSampler, tdata.RandomSampler):
            with pytest.raises(error):
                S(range(3), **kwargs)
    for args, error in [(([1.0, 2.0], 0), ValueError), (([[1.0, 2.0]], 2), ValueError),
                        (([1.0, 2.0], 2, 1), ValueError)]:
        for S in (WeightedRandomSampler, tdata.WeightedRandomSampler):
            with pytest.raises(error):
                S(*args)


def test_random_samplers():
    g = lambda: ta.Generator().manual_seed(1)
    perm = list(RandomSampler(range(20), generator=g()))
    assert sorted(perm) == list(range(20)) and perm != list(range(20))
    assert perm == list(RandomSampler(range(20), generator=g()))
    longer = list(RandomSampler(range(5), num_samples=12, generator=g()))  # without replacement: 2 permutations + 2
    assert len(longer) == 12 and sorted(longer[:5]) == sorted(longer[5:10]) == list(range(5))
    ta.manual_seed(0)
    a = list(RandomSampler(range(20)))
    ta.manual_seed(0)
    assert a == list(RandomSampler(range(20)))  # no generator: the default generator's seed decides
    huge = RandomSampler(range(7), replacement=True, num_samples=int(1e10))  # minGPT's infinite sampler
    assert len(huge) == 10**10
    first = list(itertools.islice(iter(huge), 100))  # lazy: nothing of size 1e10 is made
    assert all(0 <= i < 7 for i in first) and len(set(first)) == 7
    sub = list(SubsetRandomSampler([10, 20, 30, 40], generator=g()))
    assert sorted(sub) == [10, 20, 30, 40]
    w = list(WeightedRandomSampler([0.0, 1.0, 3.0], 4000, generator=g()))
    counts = np.bincount(w, minlength=3)
    assert counts[0] == 0 and abs(counts[2] / 4000 - 0.75) < 0.03
    distinct = list(WeightedRandomSampler([1.0, 1.0, 1.0, 1.0], 4, replacement=False, generator=g()))
    assert sorted(distinct) == [0, 1, 2, 3]


# ---- DataLoader in the main process -----------------------------------------------------------------------------


@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (10, 5, False), (4, 8, False), (4, 8, True)])
def test_batches_and_len_match_pytorch(n, bs, drop):
    ours = DataLoader(TensorDataset(ta.arange(n)), batch_size=bs, drop_last=drop)
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.arange(n)), batch_size=bs, drop_last=drop)
    assert [b[0].tolist() for b in ours] == [b[0].tolist() for b in theirs]
    assert len(ours) == len(theirs)
    ours_it = DataLoader(Stream(n), batch_size=bs, drop_last=drop)
    theirs_it = tdata.DataLoader(_TorchStream(n), batch_size=bs, drop_last=drop)
    assert len(ours_it) == len(theirs_it) and _ids(ours_it) == _ids(theirs_it)


class _TorchStream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def test_loader_forms():
    ds = Squares(5)
    single = list(DataLoader(ds, batch_size=None))  # no batching: default_convert, the sample as it is
    assert single[2][0].tolist() == [2.0, 4.0] and single[2][1] == 2
    x, i = next(iter(DataLoader(ds, batch_size=2)))
    assert x.shape == (2, 2) and x.dtype == np.float32 and i.dtype == np.int64 and i.tolist() == [0, 1]
    batches = list(DataLoader(ds, batch_sampler=[[4, 0], [2]]))
    assert [b[1].tolist() for b in batches] == [[4, 0], [2]]
    assert [b[1].tolist() for b in DataLoader(ds, sampler=[3, 1, 2], batch_size=2)] == [[3, 1], [2]]
    assert list(DataLoader(ds, batch_size=3, collate_fn=lambda b: len(b))) == [3, 2]
    assert list(DataLoader(NoLenStream(), batch_size=2)) and _ids(DataLoader(NoLenStream(), batch_size=2)) == [
        [0, 1], [2, 3], [4]]
    with pytest.raises(TypeError):
        len(DataLoader(NoLenStream()))
    with pytest.raises(TypeError):
        len(tdata.DataLoader(_NoLenTorch()))


class _NoLenTorch(tdata.IterableDataset):
    def __iter__(self):
        return iter(range(5))


@pytest.mark.parametrize("kwargs,message", [
    ({"sampler": [0, 1], "shuffle": True}, "sampler option is mutually exclusive with shuffle"),
    ({"batch_sampler": [[0]], "batch_size": 2}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "shuffle": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "sampler": [0]}, "batch_sampler option is mutually exclusive"),
    ({"batch_sampler": [[0]], "drop_last": True}, "batch_sampler option is mutually exclusive"),
    ({"batch_size": None, "drop_last": True}, "batch_size=None option disables auto-batching"),
    ({"num_workers": -1}, "num_workers option should be non-negative"),
    ({"timeout": -1}, "timeout option should be non-negative"),
    ({"prefetch_factor": 2}, "prefetch_factor option could only be specified in multiprocessing"),
    ({"persistent_workers": True}, "persistent_workers option needs num_workers > 0"),
    ({"multiprocessing_context": "fork"}, "multiprocessing_context can only be used with multi-process loading"),
    ({"num_workers": 1, "multiprocessing_context": "nonsense"}, "should specify a valid start method"),
])
def test_loader_argument_errors_match_pytorch(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tdata.DataLoader(list(range(4)), **kwargs)
    with pytest.raises(ValueError, match=message):
        DataLoader(Squares(4), **kwargs)


def test_iterable_dataset_refuses_shuffle_and_samplers_and_attributes_are_fixed():
    for kwargs in ({"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}):
        with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
            DataLoader(Stream(3), **kwargs)
    loader = DataLoader(Squares(4))
    with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
        loader.batch_size = 3
    loader.num_workers = 0  # others can change


def test_shuffle_is_reproducible_from_the_seed_or_the_generator():
    ds = TensorDataset(ta.arange(30))

    def epochs(loader, n=2):
        return [[b[0].tolist() for b in loader] for _ in range(n)]

    ta.manual_seed(0)
    a = epochs(DataLoader(ds, batch_size=8, shuffle=True))
    ta.manual_seed(0)
    b = epochs(DataLoader(ds, batch_size=8, shuffle=True))
    assert a == b and a[0] != a[1]  # the same run again, and a new order each epoch
    assert sorted(sum(a[0], [])) == list(range(30))
    ta.manual_seed(1)
    assert epochs(DataLoader(ds, batch_size=8, shuffle=True)) != a
    c = epochs(DataLoader(ds, batch_size=8, shuffle=True, generator=ta.Generator().manual_seed(5)))
    ta.manual_seed(123)  # the default generator does not matter when the loader has its own
    d = epochs(DataLoader(ds, batch_size=8, shuffle=True, generator=ta.Generator().manual_seed(5)))
    assert c == d


@pytest.mark.parametrize("batch", [
    [1, 2], [1.0, 2.5], [True, False], [np.float32(1), np.float32(2)], [np.int16(1), np.int16(2)],
    [(1, "a"), (2, "b")], [{"x": [1, 2], "y": 1.5}, {"x": [3, 4], "y": 2.5}], [[1, 2], [3, 4]],
    [np.zeros((2, 3)), np.ones((2, 3))], [np.arange(3, dtype=np.int32), np.arange(3, dtype=np.int32)],
    [collections.OrderedDict(a=1), collections.OrderedDict(a=2)], ["s", "t"],
], ids=lambda b: type(b[0]).__name__)
def test_default_collate_matches_pytorch(batch):
    assert _plain(default_collate(batch)) == _plain(tdata.default_collate(batch))


def test_collate_namedtuples_tensors_and_errors():
    Point = collections.namedtuple("Point", "x y")
    ours = default_collate([Point(ta.tensor([1.0]), 1), Point(ta.tensor([2.0]), 2)])
    theirs = tdata.default_collate([Point(torch.tensor([1.0]), 1), Point(torch.tensor([2.0]), 2)])
    assert _plain(ours) == _plain(theirs) and isinstance(ours, Point)
    for bad, error, message in [
        ([ta.zeros(2), ta.zeros(3)], RuntimeError, r"stack expects each tensor to be equal size, but got \[2\] at entry 0 "
                                                   r"and \[3\] at entry 1"),
        ([np.zeros(2), np.zeros(3)], RuntimeError, "stack expects each tensor to be equal size"),
        ([[1, 2], [1]], RuntimeError, "each element in list of batch should be of equal size"),
        ([None, None], TypeError, "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists"),
        ([np.array(["a"]), np.array(["b"])], TypeError, "default_collate: batch must contain"),
    ]:
        with pytest.raises(error, match=message):
            default_collate(bad)
    converted = default_convert((np.zeros(2), 1, "a", {"k": np.int64(3)}))
    assert _plain(converted) == _plain(tdata.default_convert((np.zeros(2), 1, "a", {"k": np.int64(3)})))


def test_mingpt_style_infinite_loader():
    """minGPT's trainer: RandomSampler(replacement=True, num_samples=1e10), shuffle=False, pin_memory=True."""
    from tinyattn.utils.data.dataloader import DataLoader as DL
    ds = Squares(6)
    loader = DL(ds, sampler=tud.RandomSampler(ds, replacement=True, num_samples=int(1e10)), shuffle=False,
                pin_memory=True, batch_size=4, num_workers=0)
    it = iter(loader)
    x, i = next(it)
    x2, _ = next(it)
    assert x.shape == (4, 2) and x2.shape == (4, 2) and len(loader) == 10**10 // 4
    assert ((x[:, 0].numpy() ** 2) == x[:, 1].numpy()).all() and set(i.tolist()) <= set(range(6))
    rng = ta.Generator()
    rng.manual_seed(1337)
    perm = ta.randperm(6, generator=rng)
    assert sorted(perm.tolist()) == list(range(6))


# ---- worker processes ----------------------------------------------------------------------------------------------


def test_workers_give_the_same_batches_as_the_main_process_and_are_seeded_per_worker():
    ds = Squares(23)
    kwargs = dict(batch_size=4, shuffle=True, generator=ta.Generator().manual_seed(7))
    expected = [b[1].tolist() for b in DataLoader(ds, **kwargs)]
    kwargs["generator"] = ta.Generator().manual_seed(7)
    loader = DataLoader(ds, num_workers=2, **kwargs)
    assert [b[1].tolist() for b in loader] == expected
    assert _no_children()  # exhausted: the workers are gone

    seen = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2, generator=ta.Generator().manual_seed(3)))
    workers = sum((b["worker"].tolist() for b in seen), [])
    seeds = sum((b["seed"].tolist() for b in seen), [])
    assert workers == [0, 0, 1, 1, 0, 0, 1, 1]  # round robin, in order
    base = seeds[0]
    assert seeds == [base, base, base + 1, base + 1] * 2  # seed = base_seed + worker_id
    draws = sum((b["draw"].tolist() for b in seen), [])
    again = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2, generator=ta.Generator().manual_seed(3)))
    assert sum((b["draw"].tolist() for b in again), []) == draws  # the loader's generator fixes the workers' streams
    assert draws[0] != draws[2]  # each worker has its own stream
    assert [b["worker"].tolist() for b in DataLoader(WhoAmI(), batch_size=4)][0] == [-1] * 4  # no worker info

    shards = _ids(DataLoader(Stream(10), batch_size=3, num_workers=2))
    assert sorted(sum(shards, [])) == list(range(10))  # every sample once: the dataset used get_worker_info
    theirs = [b.tolist() for b in tdata.DataLoader(_TorchShardedStream(10), batch_size=3, num_workers=2)]
    assert shards == theirs


class _TorchShardedStream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = tdata.get_worker_info()
        return iter(range(info.id, self.n, info.num_workers))


def test_a_worker_error_is_raised_in_the_main_process_naming_the_worker():
    loader = DataLoader(Faulty(), batch_size=2, num_workers=2)
    got = []
    with pytest.raises(ValueError, match=r"Caught ValueError in DataLoader worker process 1\.(.|\n)*sample 7 is broken"):
        for b in loader:
            got.append(b.tolist())
    assert got == [[0, 1], [2, 3], [4, 5]]
    assert _no_children()
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+\) exited unexpectedly"):
        list(DataLoader(Dies(), batch_size=2, num_workers=1))
    assert _no_children()

    # stopping early (break) and a persistent loader's epochs
    loader = DataLoader(Squares(40), batch_size=5, num_workers=2, persistent_workers=True)
    for epoch in range(2):
        assert [b[1].tolist()[0] for b in loader] == list(range(0, 40, 5))
    assert len(multiprocessing.active_children()) == 2  # the same two workers served both epochs
    del loader
    assert _no_children()
    for k, _ in enumerate(DataLoader(Squares(40), batch_size=2, num_workers=2)):
        if k == 1:
            break
    assert _no_children()


def test_spawned_workers():
    """'spawn' starts fresh interpreters: everything they get is pickled (here tinyattn's own classes only,
    so the children need not import this test module, and torch with it)."""
    ds = TensorDataset(ta.arange(9), ta.arange(9.0) * 2)
    loader = DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert _no_children()


def test_distributed_sampler_and_generic_subscripts():
    ours = tud.DistributedSampler(Squares(5), num_replicas=2, rank=1, shuffle=False)
    theirs = tdata.DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    assert sorted(tud.DistributedSampler(dataset=Squares(6), num_replicas=2, rank=0, seed=3)) != [0, 1, 2]
    from tinyattn.utils.data.distributed import DistributedSampler
    assert DistributedSampler is tud.DistributedSampler

    class Typed(Dataset[int]):  # PyTorch's Dataset, Sampler and DataLoader are Generic
        pass

    assert isinstance(Typed(), Dataset) and tud.Sampler[int] and DataLoader[int]


def test_importing_utils_data_does_not_import_mpi4py():
    import subprocess
    import sys
    code = "import sys, tinyattn.utils.data.distributed; assert 'mpi4py' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
