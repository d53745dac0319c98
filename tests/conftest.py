import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny convolutions: one thread is faster and spares a busy 2-core machine OpenMP's waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
