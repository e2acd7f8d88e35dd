import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One torch thread: tiny models gain nothing from two, and lose a lot on a loaded machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def jscc():
    """An untrained DeepJSCC at 32x32 with k = 64 (rho 1/48) and 8 channels: fast, deterministic."""
    import torch

    from singlink.jscc.model import DeepJSCC, DeepJSCCConfig

    torch.manual_seed(0)
    return DeepJSCC(DeepJSCCConfig(k=64, channels=8)).eval()


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory):
    """The 'tiny' diffusion prior, untrained, saved and loaded back as a user's would be."""
    import torch

    from singlink.receiver.prior import DiffusionPrior

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("prior")
    DiffusionPrior.from_preset("tiny").save_pretrained(folder)
    return DiffusionPrior.from_pretrained(folder)
