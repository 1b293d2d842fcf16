"""tinyattn.as_torch: `import torch` resolving to tinyattn, opt-in, with clear errors for missing names."""
import os
import subprocess
import sys
import textwrap

import pytest

import programs
import tinyattn as ta
import tinyattn.as_torch as as_torch


@pytest.fixture
def torch_is_tinyattn():
    with programs.torch_is_tinyattn() as torch:
        yield torch


def test_torch_and_its_submodules_resolve_to_tinyattn(torch_is_tinyattn):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.utils.data.dataloader import DataLoader
    from torch.nn.parallel import DistributedDataParallel
    from torch.distributed import destroy_process_group, init_process_group  # noqa: F401
    import torch.backends.cudnn as cudnn
    assert torch is torch_is_tinyattn
    assert torch.Tensor is ta.Tensor and nn.Linear is ta.nn.Linear and F.softmax is ta.nn.functional.softmax
    assert DataLoader is ta.utils.data.DataLoader and DistributedDataParallel is ta.distributed.DistributedDataParallel
    assert torch.optim.lr_scheduler.LambdaLR is ta.optim.lr_scheduler.LambdaLR
    assert torch.cuda.amp.GradScaler is ta.cuda.amp.GradScaler and torch.amp.autocast is ta.amp.autocast
    cudnn.benchmark = True  # flags can be set and read back
    assert torch.backends.cudnn.benchmark is True
    assert isinstance(torch.randn(2, 3), ta.Tensor)
    assert torch.__version__.startswith("2.") and "tinyattn" in torch.__version__


def test_a_missing_torch_name_fails_at_first_use_naming_it(torch_is_tinyattn):
    import torch
    with pytest.raises(AttributeError, match=r"torch\.nn\.functional\.grid_sample: tinyattn has no counterpart"):
        torch.nn.functional.grid_sample
    assert not hasattr(torch.nn.functional, "grid_sample")  # a program's feature test sees an older PyTorch
    with pytest.raises(ModuleNotFoundError, match=r"torch\.fft: tinyattn has no counterpart"):
        import torch.fft  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match=r"torch\._dynamo"):
        from torch._dynamo import config  # noqa: F401


def test_install_refuses_to_run_after_the_real_torch(monkeypatch):
    fake = type(sys)("torch")
    monkeypatch.setitem(sys.modules, "torch", fake)
    with pytest.raises(RuntimeError, match="real torch is already imported"):
        as_torch.install()


def _run(args, cwd, **env):
    environment = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", **env}
    return subprocess.run([sys.executable, "-m", "tinyattn.as_torch", *args], cwd=cwd, capture_output=True,
                          text=True, env=environment, timeout=120)


def test_the_runner_gives_a_script_its_argv_main_and_sibling_imports(tmp_path):
    (tmp_path / "helper.py").write_text("import torch\nVALUE = torch.ones(3).sum().item()\n")
    (tmp_path / "prog.py").write_text(textwrap.dedent("""
        import sys
        import torch
        import torch.nn as nn
        from helper import VALUE
        if __name__ == "__main__":
            print("args", sys.argv[1:], VALUE, type(nn.Linear(2, 3)(torch.zeros(1, 2))).__module__)
    """))
    result = _run([str(tmp_path / "prog.py"), "--lr=0.1", "x"], cwd="/")
    assert result.returncode == 0, result.stderr
    assert "args ['--lr=0.1', 'x'] 3.0 tinyattn.tensor" in result.stdout
    assert result.stderr.count("`import torch` gives tinyattn") == 1


def test_the_runner_runs_a_module_and_reports_a_missing_name(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text("import sys, torch\nprint(tuple(torch.zeros(2).shape), sys.argv[1:])\n"
                                 "torch.fft.fft(torch.zeros(4))\n")
    result = _run(["-m", "pkg.main", "a"], cwd=tmp_path)
    assert "(2,) ['a']" in result.stdout
    assert result.returncode != 0 and "torch.fft: tinyattn has no counterpart" in result.stderr
    assert _run([], cwd=tmp_path).returncode == 2


def test_every_mapped_torch_module_exists_in_tinyattn():
    import importlib
    for torch_name, ours in as_torch.MODULES.items():
        assert importlib.import_module(ours).__name__ == ours, torch_name
