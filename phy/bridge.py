"""Zero-copy tensor exchange between TensorFlow (Sionna) and PyTorch over DLPack, and
:class:`TFModule`, which runs any TensorFlow/Sionna callable as a differentiable torch module.

Both directions share the buffer: no bytes are copied, a write through one framework is seen
by the other, and the exchange costs microseconds regardless of size. Three cases copy, on
purpose and documented: a non-contiguous torch tensor is made contiguous first (DLPack export
in TensorFlow rejects arbitrary strides); a torch tensor with a lazy conjugate or negative
bit is resolved (DLPack has no such flags, so exporting it raw would hand over the wrong
values); and a buffer that is not 64-byte aligned (a slice at an offset, ``torch.from_numpy``
of a NumPy array) is copied into a fresh allocation, because TensorFlow's kernels assume
Eigen's 64-byte alignment and abort the whole process otherwise.

Autograd does not cross DLPack by itself; :class:`TFModule` records the TensorFlow side on a
``tf.GradientTape`` and replays it in torch's backward. Complex gradients: torch hands
``grad_output`` = dL/d(conj y) (the conjugate Wirtinger derivative, which for a real loss is
dL/dRe + i dL/dIm) and expects the same for inputs; TensorFlow's ``output_gradients`` and
``tape.gradient`` use that same convention for a real loss (checked by ``gradcheck`` in
tests/test_bridge.py), so the cotangents are passed through unconjugated. The tape is
persistent and lives as long as torch's graph, so ``retain_graph=True`` backward passes work;
double backward (gradients of gradients) is not supported.

On GPU the tensors must live on the same device; ``tf_to_torch``/``torch_to_tf`` synchronise
the producing framework before handing a buffer over, since neither reads the other's stream.
"""
import tensorflow as tf
import torch

__all__ = ["tf_to_torch", "torch_to_tf", "TFModule", "BridgeError"]


#: Byte alignment TensorFlow's CPU kernels require of every buffer (Eigen's EIGEN_MAX_ALIGN_BYTES).
TF_ALIGNMENT = 64

#: dtypes both frameworks exchange over DLPack. Others (tf.string, tf.resource, tf.variant, quantised
#: types) have no DLPack form: TensorFlow aborts the whole process (SIGABRT) when asked to export them,
#: so they are refused before the call.
TF_DLPACK_DTYPES = frozenset({tf.bool, tf.int8, tf.int16, tf.int32, tf.int64, tf.uint8, tf.float16, tf.bfloat16,
                              tf.float32, tf.float64, tf.complex64, tf.complex128})
TORCH_DLPACK_DTYPES = frozenset({torch.bool, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                                 torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
                                 torch.complex128})


class BridgeError(TypeError):
    """Input the DLPack bridge cannot exchange (the message says how to fix it)."""


def _tf_has_gpu() -> bool:
    return bool(tf.config.list_logical_devices("GPU"))


def tf_to_torch(t: tf.Tensor) -> torch.Tensor:
    """Zero-copy view of an eager TensorFlow tensor as a torch tensor (same device, same dtype)."""
    if isinstance(t, tf.Variable):
        raise BridgeError("a tf.Variable cannot be exported through DLPack (TensorFlow may move or "
                          "update its buffer); pass tf.convert_to_tensor(var) or var.read_value(), which copy")
    if isinstance(t, (tf.RaggedTensor, tf.SparseTensor)):
        raise BridgeError(f"a {type(t).__name__} has no dense buffer to share; convert it with "
                          ".to_tensor() (ragged) or tf.sparse.to_dense() first")
    if not isinstance(t, tf.Tensor):
        raise BridgeError(f"tf_to_torch takes a tf.Tensor, got {type(t).__name__}")
    if not hasattr(t, "numpy"):
        raise BridgeError("tf_to_torch needs an eager tensor; inside a tf.function there is no buffer yet")
    if t.dtype not in TF_DLPACK_DTYPES:
        raise BridgeError(f"a {t.dtype.name} tensor cannot cross DLPack (numbers and bool only: "
                          f"{', '.join(sorted(d.name for d in TF_DLPACK_DTYPES))})")
    if "GPU" in t.device:
        tf.test.experimental.sync_devices()
    return torch.from_dlpack(t)


def torch_to_tf(x: torch.Tensor) -> tf.Tensor:
    """Zero-copy view of a torch tensor as a TensorFlow tensor (same device, same dtype).

    The result carries no autograd history (use :class:`TFModule` for gradients). A
    non-contiguous tensor, one with a lazy conjugate/negative bit, or one whose buffer is not
    64-byte aligned is first copied into a contiguous, resolved, aligned tensor.
    """
    if not isinstance(x, torch.Tensor):
        raise BridgeError(f"torch_to_tf takes a torch.Tensor, got {type(x).__name__}")
    if x.layout != torch.strided:
        raise BridgeError(f"only dense (strided) torch tensors can be shared, got layout {x.layout}; call .to_dense()")
    if x.device.type == "cuda" and not _tf_has_gpu():
        raise BridgeError(f"the torch tensor is on {x.device} but TensorFlow sees no GPU; move it "
                          "with .cpu() or install a GPU build of TensorFlow")
    if x.device.type not in ("cpu", "cuda"):
        raise BridgeError(f"DLPack exchange with TensorFlow supports cpu and cuda tensors, got {x.device}")
    if x.dtype not in TORCH_DLPACK_DTYPES:
        raise BridgeError(f"a {x.dtype} tensor cannot cross to TensorFlow over DLPack (numbers and bool only: "
                          f"{', '.join(sorted(str(d).split('.')[1] for d in TORCH_DLPACK_DTYPES))})")
    x = x.detach()
    if x.is_conj():
        x = x.resolve_conj()
    if x.is_neg():
        x = x.resolve_neg()
    if not x.is_contiguous():
        x = x.contiguous()  # documented copy: DLPack export needs compact strides here
    if x.numel() and x.data_ptr() % TF_ALIGNMENT:
        x = x.clone()  # documented copy: torch's allocator aligns to 64 bytes, TF requires it
    if x.device.type == "cuda":
        torch.cuda.current_stream(x.device).synchronize()
    return tf.experimental.dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(x))


def _device_of(args):
    devices = {a.device for a in args if isinstance(a, torch.Tensor)}
    if len(devices) > 1:
        raise BridgeError(f"inputs are on different devices ({', '.join(sorted(map(str, devices)))}); "
                          "move them to one device")
    dev = devices.pop() if devices else torch.device("cpu")
    return dev, ("/GPU:%d" % (dev.index or 0) if dev.type == "cuda" else "/CPU:0")


def _differentiable(dtype: tf.DType) -> bool:
    return dtype.is_floating or dtype.is_complex


class _TFAutograd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, *args):
        _, tf_device = _device_of(args)
        tf_args = [torch_to_tf(a) if isinstance(a, torch.Tensor) else a for a in args]
        watched = [i for i, a in enumerate(args)
                   if isinstance(a, torch.Tensor) and a.requires_grad and _differentiable(tf_args[i].dtype)]
        with tf.device(tf_device), tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            for i in watched:
                tape.watch(tf_args[i])
            out = fn(*tf_args)
        ctx.single = not isinstance(out, (tuple, list))
        outs = (out,) if ctx.single else tuple(out)
        ctx.tape, ctx.tf_device, ctx.nargs = tape, tf_device, len(args)
        ctx.sources, ctx.watched, ctx.targets = [tf_args[i] for i in watched], watched, outs
        torch_outs = tuple(tf_to_torch(tf.convert_to_tensor(o)) for o in outs)
        ctx.mark_non_differentiable(*[t for t in torch_outs if not (t.is_floating_point() or t.is_complex())])
        return torch_outs[0] if ctx.single else torch_outs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        result = [None] * (1 + ctx.nargs)
        pairs = [(o, g) for o, g in zip(ctx.targets, grads) if g is not None and _differentiable(o.dtype)]
        if not ctx.sources or not pairs:
            return tuple(result)
        targets = [o for o, _ in pairs]
        cotangents = [torch_to_tf(g) for _, g in pairs]
        with tf.device(ctx.tf_device):
            gs = ctx.tape.gradient(targets, ctx.sources, output_gradients=cotangents,
                                   unconnected_gradients=tf.UnconnectedGradients.ZERO)
        for i, g in zip(ctx.watched, gs):
            result[1 + i] = tf_to_torch(g)
        return tuple(result)


class TFModule(torch.nn.Module):
    """Any TensorFlow/Sionna callable as a :class:`torch.nn.Module`, differentiable end to end.

    ``TFModule(fn)(*args)`` converts torch tensor arguments zero-copy, runs ``fn`` eagerly under a
    gradient tape on the inputs' device, and returns torch tensors (a tuple if ``fn`` returns
    one). Non-tensor arguments (an SNR as a float, say) are passed as they are. Gradients reach
    every floating/complex torch input that requires them, so a DeepJSCC encoder can be trained
    through a Sionna channel::

        channel = TFModule(AWGNChannel())
        y, h = channel(z, snr_db)          # z: torch complex64 (N, k), requires_grad
    """

    def __init__(self, fn):
        super().__init__()
        if not callable(fn):
            raise BridgeError(f"TFModule wraps a callable, got {type(fn).__name__}")
        self.fn = fn

    def forward(self, *args):
        return _TFAutograd.apply(self.fn, *args)

    def extra_repr(self):
        return type(self.fn).__name__


def as_torch(fn):
    """``fn`` (a Sionna block or any TF callable) as a differentiable torch callable: here a
    :class:`TFModule`. The sionna-torch backend's ``as_torch`` returns ``fn`` itself (its blocks
    are torch already), so code that wraps phy blocks with ``phy.as_torch`` runs on either backend."""
    return TFModule(fn)
