"""The calling thread's Numba thread count, read and set without Numba's per-call checks.

numba.get_num_threads / set_num_threads first make sure the threading layer is loaded (`_launch_threads`, which
takes a multiprocessing lock): 0.7 and 1.0 us a call here, paid per kernel by the CPU backend's small-kernel
switch to one thread and by every matmul that sizes its task grid. Once the layer is loaded, the layer's own
calls read and write the same thread-local count for 0.1-0.25 us, so ta.set_num_threads / numba.set_num_threads
and these see one value.
"""
import numba

__all__ = ["num_threads", "thread_count_calls"]

_calls = None  # (get, set), found once


def thread_count_calls():
    """(get, set): the threading layer's own getter and setter of the calling thread's count, or numba's public
    get_num_threads / set_num_threads when this Numba keeps them elsewhere (or they disagree). Loads the layer on
    the first call; later calls return the same pair."""
    global _calls
    if _calls is None:
        _calls = _find_calls()
    return _calls


def num_threads():
    """numba.get_num_threads() through thread_count_calls' getter (the matmul task grid, the backend's sums)."""
    return (_calls or thread_count_calls())[0]()


def _find_calls():
    public = numba.get_num_threads()
    try:
        from numba.np.ufunc import parallel

        get, put = parallel._get_num_threads, parallel._set_num_threads
        if get() == public:
            return get, put
    except Exception:  # noqa: BLE001 (another Numba's internals: the public, checked calls)
        pass
    return numba.get_num_threads, numba.set_num_threads
