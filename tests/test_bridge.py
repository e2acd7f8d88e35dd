"""DLPack bridge: zero copy both ways, clear errors, and gradients through Sionna blocks."""
import numpy as np
import pytest
import tensorflow as tf
import torch

from singlink import phy

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
          torch.int8, torch.uint8, torch.int32, torch.int64, torch.bool]


def sample(dtype, device="cpu"):
    x = torch.arange(12, device=device).reshape(3, 4)
    if dtype.is_complex:
        return (x + 1j * x).to(dtype)
    return x.to(dtype) if dtype != torch.bool else x % 2 == 0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_torch_to_tf_to_torch_is_zero_copy(dtype):
    x = sample(dtype)
    t = phy.torch_to_tf(x)
    back = phy.tf_to_torch(t)
    assert back.dtype == dtype and back.data_ptr() == x.data_ptr()
    np.testing.assert_array_equal(t.numpy().astype(np.float64) if dtype == torch.bfloat16 else t.numpy(),
                                  x.float().numpy() if dtype == torch.bfloat16 else x.numpy())
    # a write through torch is seen by TensorFlow
    x[0, 0] = True if dtype == torch.bool else 7
    assert t.numpy()[0, 0] == (True if dtype == torch.bool else 7)


def test_tf_to_torch_is_zero_copy_and_shares_writes():
    t = tf.constant(np.arange(6, dtype=np.complex64))
    x = phy.tf_to_torch(t)
    assert x.data_ptr() == phy.tf_to_torch(t).data_ptr()
    x[1] = 5 + 5j  # TF tensors are immutable by contract; the buffer is nevertheless shared
    assert t.numpy()[1] == 5 + 5j


def test_non_contiguous_is_copied_and_correct():
    x = torch.arange(12.0).reshape(3, 4).t()
    t = phy.torch_to_tf(x)
    np.testing.assert_array_equal(t.numpy(), x.numpy())


@pytest.mark.parametrize("make", [lambda: torch.arange(10.0)[1:],
                                  lambda: torch.from_numpy(np.arange(1001, dtype=np.complex64)[1:])],
                         ids=["offset-slice", "from-numpy"])
def test_misaligned_buffers_are_copied_not_fatal(make):
    """TensorFlow aborts the process on buffers that are not 64-byte aligned: they are copied."""
    x = make()
    assert x.data_ptr() % phy.bridge.TF_ALIGNMENT
    t = phy.torch_to_tf(x)
    assert phy.tf_to_torch(t).data_ptr() % phy.bridge.TF_ALIGNMENT == 0
    np.testing.assert_array_equal(tf.reduce_sum(t).numpy(), x.sum().numpy())


def test_lazy_conjugate_is_resolved():
    x = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64)
    np.testing.assert_array_equal(phy.torch_to_tf(x.conj()).numpy(), np.conj(x.numpy()))


def test_bad_inputs_give_clear_errors():
    with pytest.raises(phy.BridgeError, match="tf.Variable"):
        phy.tf_to_torch(tf.Variable([1.0]))
    with pytest.raises(phy.BridgeError, match="RaggedTensor"):
        phy.tf_to_torch(tf.ragged.constant([[1.0], [2.0, 3.0]]))
    with pytest.raises(phy.BridgeError, match="torch.Tensor"):
        phy.torch_to_tf(np.ones(3))
    with pytest.raises(phy.BridgeError, match="different devices"):
        phy.TFModule(tf.add)(torch.ones(2), torch.ones(2, device="meta"))
    with pytest.raises(phy.BridgeError, match="dense"):
        phy.torch_to_tf(torch.ones(2, 2).to_sparse())


def seeded(block, seed=3):
    """Fresh but identical channel draws on every call, as gradcheck re-evaluates the function."""
    def fn(z, snr_db):
        phy.set_seed(seed)
        return block(z, snr_db)
    return fn


@pytest.mark.parametrize("channel", ["awgn", "rayleigh-block", "rayleigh-fast"])
def test_gradcheck_through_sionna_channel(channel):
    module = phy.TFModule(seeded(phy.make_channel(channel, precision="double")))
    z = torch.randn(3, 5, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: module(z, 4.0), (z,))


def test_gradcheck_non_holomorphic_and_per_example_snr():
    block = phy.RayleighBlockFadingChannel(precision="double")

    def fn(z, snr_db):
        phy.set_seed(5)
        y, h = block(phy.normalize_power(z), snr_db)
        return tf.abs(phy.equalize(y, h, snr_db, "mmse")[0]) ** 2, h

    module = phy.TFModule(fn)
    z = torch.randn(3, 4, dtype=torch.complex128, requires_grad=True)
    snr = torch.tensor([-5.0, 0.0, 5.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, s: module(z, s)[0], (z, snr))


def test_training_signal_matches_torch_native_awgn():
    """The gradient a DeepJSCC encoder receives through the Sionna channel equals the one of the
    same computation written in torch."""
    z = torch.randn(4, 8, dtype=torch.complex64, requires_grad=True)
    target = torch.randn(4, 8, dtype=torch.complex64)
    y, h = phy.TFModule(phy.AWGNChannel())(z, 0.0)
    noise = (y - z).detach()
    ((y - target).abs() ** 2).sum().backward()
    g_bridge = z.grad.clone()
    z.grad = None
    ((z + noise - target).abs() ** 2).sum().backward()
    torch.testing.assert_close(g_bridge, z.grad)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64, torch.bfloat16, torch.int32, torch.bool], ids=str)
def test_gpu_zero_copy(dtype):
    x = sample(dtype, "cuda")
    t = phy.torch_to_tf(x)
    assert "GPU" in t.device
    assert phy.tf_to_torch(t).data_ptr() == x.data_ptr()


@pytest.mark.gpu
def test_gpu_gradcheck():
    module = phy.TFModule(seeded(phy.AWGNChannel(precision="double")))
    z = torch.randn(2, 3, dtype=torch.complex128, device="cuda", requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: module(z, 0.0)[0], (z,))


@pytest.mark.gpu
def test_tf_does_not_take_all_gpu_memory():
    gpus = tf.config.list_physical_devices("GPU")
    assert gpus and all(tf.config.experimental.get_memory_growth(g) for g in gpus)
