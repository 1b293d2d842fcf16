"""tinyattn/runtime.py: the process-wide effects (malloc tuning, compile notice, compile-ahead, host kernel),
each switched off by its environment variable or by configure(), all three switchable ones by off(); and the
alignment of the arrays compiled code allocates (kernels/cpu/alignment.py), which stays on."""
import numba
import numpy as np
import pytest

from tinyattn import compile_ahead, runtime
from tinyattn.kernels.cpu import activations, alignment, attention, matmul, microkernel, policy


@pytest.fixture
def restore(monkeypatch):
    """Every piece of state configure() touches, put back after the test."""
    monkeypatch.setattr(runtime, "_malloc_tuning", runtime._malloc_tuning)
    monkeypatch.setattr(runtime, "_compile_notice", runtime._compile_notice)
    monkeypatch.setattr(runtime, "_backward_expected", runtime._backward_expected)
    monkeypatch.setattr(runtime.CompileNotice, "quiet", runtime.CompileNotice.quiet)
    monkeypatch.setattr(runtime.AHEAD, "enabled", runtime.AHEAD.enabled)
    monkeypatch.setattr(runtime.AHEAD, "pending", None)
    monkeypatch.setattr(matmul, "KERNEL", matmul.KERNEL)
    monkeypatch.setattr(attention, "KERNEL", attention.KERNEL)
    return monkeypatch


def test_off_switches_the_three_effects_off_together(restore):
    runtime.configure(malloc_tuning=True, compile_notice=True, compile_ahead=True)
    assert runtime.settings()["compile_ahead"] and runtime.settings()["compile_notice"]
    runtime.off()
    s = runtime.settings()
    assert (s["malloc_tuning"], s["compile_notice"], s["compile_ahead"]) == (False, False, False)
    assert runtime.CompileNotice.quiet and not runtime.AHEAD.enabled
    assert runtime.tune_malloc() is False  # not attempted
    q = np.zeros((1, 2, 3))
    with runtime.compile_ahead_of_backward(q, q, q, None, True, -1, 0.5, 0):
        assert runtime.AHEAD.pending is None


def test_environment_variables_still_switch_each_effect(restore):
    restore.setenv("TINYATTN_MALLOC_TUNING", "0")
    assert runtime.tune_malloc() is False and runtime.settings()["malloc_tuning"] is False
    restore.setenv("TINYATTN_COMPILE_AHEAD", "0")
    assert not compile_ahead.AheadCompiler().enabled
    restore.setenv("TINYATTN_MATMUL_KERNEL", "portable")
    assert microkernel.host_kernel() == "portable"


def test_compile_ahead_of_backward_keeps_the_call_only_while_a_backward_is_expected(restore):
    runtime.configure(compile_ahead=True)
    q = np.zeros((1, 2, 3))
    with runtime.compile_ahead_of_backward(q, q, q, None, True, -1, 0.5, 0):
        assert runtime.AHEAD.pending[:6] == (q, q, q, None, False, True)
    assert runtime.AHEAD.pending is None
    runtime.set_backward_expected(lambda: False)  # e.g. under no_grad
    with runtime.compile_ahead_of_backward(q, q, q, None, True, -1, 0.5, 0):
        assert runtime.AHEAD.pending is None
    runtime.set_backward_expected(None)
    assert runtime._backward_expected()


def test_the_trigger_kernels_are_declared_and_resolve():
    """compile_ahead recognises attention's forward kernels from a declaration, not from their names: every
    declared name resolves to a Numba kernel, a backward or matmul kernel is no trigger, and register() adds one."""
    ahead = compile_ahead.AheadCompiler()
    for module_name, names in compile_ahead.TRIGGERS.items():
        module = __import__(module_name, fromlist=["_"])
        for name in names:
            assert hasattr(getattr(module, name), "py_func"), (module_name, name)
    found = ahead.triggers()
    assert attention._forward_mk.py_func in found and attention._forward.py_func in found
    assert attention._backward_mk.py_func not in found and matmul._gemm_outer.py_func not in found
    ahead.register(matmul._gemm_outer)
    assert matmul._gemm_outer.py_func in ahead.triggers()


def test_set_host_kernel_sets_matmul_and_attention_and_rejects_unknown_names(restore):
    runtime.configure(host_kernel="portable")
    assert matmul.KERNEL == attention.KERNEL == "portable" == runtime.host_kernel()
    a = np.arange(12.0).reshape(1, 3, 4)
    np.testing.assert_allclose(matmul.matmul_nt(a, a), a @ a.transpose(0, 2, 1))
    with pytest.raises(ValueError, match="set_host_kernel.*sse9"):
        runtime.set_host_kernel("sse9")
    runtime.set_host_kernel(None)
    assert matmul.KERNEL == microkernel.host_kernel()


def test_kernel_label_names_the_module_below_the_device_package():
    class Fake:
        pass

    def f():
        pass

    for module, label in [("tinyattn.kernels.cpu.matmul", "matmul.f"), ("tinyattn.kernels.cpu.matmul.outer",
                                                                          "matmul.outer.f")]:
        f.__module__ = module
        disp = Fake()
        disp.py_func = f
        assert runtime._kernel_label(disp, (np.zeros(1, np.float32),)) == label + " (float32)"


def test_omp_spin_is_set_only_when_asked_for_and_the_user_chose_nothing(monkeypatch):
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "TINYATTN_OMP_SPIN"):
        monkeypatch.delenv(name, raising=False)
    assert not runtime.limit_omp_spin() and "GOMP_SPINCOUNT" not in runtime.os.environ  # libgomp's own spin
    monkeypatch.setenv("TINYATTN_OMP_SPIN", "on")
    assert runtime.limit_omp_spin() and runtime.os.environ["GOMP_SPINCOUNT"] == runtime.OMP_SPIN_COUNT
    monkeypatch.setenv("TINYATTN_OMP_SPIN", "250")
    monkeypatch.delenv("GOMP_SPINCOUNT")
    assert runtime.limit_omp_spin() and runtime.os.environ["GOMP_SPINCOUNT"] == "250"
    monkeypatch.setenv("GOMP_SPINCOUNT", "77")  # the user's own choice stays
    assert not runtime.limit_omp_spin() and runtime.os.environ["GOMP_SPINCOUNT"] == "77"
    monkeypatch.delenv("GOMP_SPINCOUNT")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert not runtime.limit_omp_spin() and "GOMP_SPINCOUNT" not in runtime.os.environ
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("TINYATTN_OMP_SPIN", "0")  # off
    assert not runtime.limit_omp_spin() and "GOMP_SPINCOUNT" not in runtime.os.environ
    monkeypatch.setenv("TINYATTN_OMP_SPIN", "lots")
    with pytest.raises(ValueError, match="TINYATTN_OMP_SPIN"):
        runtime.limit_omp_spin()


def test_arrays_that_compiled_code_allocates_start_on_a_cache_line():
    """A product's output, an activation's output and a Numba function of the user's, made after tinyattn was
    imported: 64-byte aligned (Numba's own is 32, glibc's heap 16), whatever their sizes, and a second call of
    align_compiled_arrays changes nothing."""
    assert policy.ARRAY_ALIGNMENT == 64
    assert alignment.align_compiled_arrays() is alignment.align_compiled_arrays()

    @numba.njit
    def users_empty(n):
        return np.empty(n, np.float32)

    rng = np.random.default_rng(0)
    for rows in (1, 3, 7, 64, 100, 333):
        a = rng.standard_normal((1, rows, 40)).astype(np.float32)
        b = rng.standard_normal((1, 40, 24)).astype(np.float32)
        for out in (matmul.matmul_nn(a, b), activations.gelu_forward(a.reshape(-1)), users_empty(rows * 5 + 1)):
            assert out.ctypes.data % 64 == 0, (rows, out.shape)


def test_parameters_and_adams_state_start_on_a_cache_line():
    """The built-in layers' parameters (creation.empty_parameter_data, shared by Parameter, not copied) and Adam's
    moments (backend.host_zeros_like) are 64-byte aligned, like the arrays compiled code allocates."""
    import tinyattn as ta

    ta.manual_seed(0)
    model = ta.nn.Sequential(ta.nn.Embedding(7, 24), ta.nn.LayerNorm(24), ta.nn.Linear(24, 40), ta.nn.Linear(40, 3))
    opt = ta.optim.AdamW(model.parameters(), amsgrad=True)
    model(ta.tensor([[1, 2, 3]])).sum().backward()
    opt.step()
    arrays = [p._array for p in model.parameters()]
    arrays += [v for state in opt.state.values() for k, v in state.items() if k != "step"]
    assert len(arrays) == 7 + 3 * 7
    assert all(a.ctypes.data % 64 == 0 for a in arrays)
