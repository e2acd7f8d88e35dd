"""The diffusion prior of the SING receiver: a DDPM noise predictor ``eps(x_t, t)``.

:class:`DiffusionPrior` wraps a diffusers ``UNet2DModel`` trained for epsilon prediction and the
``DDPMScheduler`` that defines its noise schedule (the DDPM linear schedule, beta 1e-4 to 0.02
over T = 1000 steps, for every prior singlink trains). It is the one place where images change
range: singlink passes images in [0, 1] (:mod:`singlink.data`), the UNet works in [-1, 1]
(:meth:`DiffusionPrior.to_model_range`, :meth:`DiffusionPrior.to_image_range`).

Storage is the diffusers ``DDPMPipeline`` folder layout, the layout of the hub repository
``google/ddpm-cifar10-32``::

    model_index.json
    unet/config.json, unet/diffusion_pytorch_model.safetensors
    scheduler/scheduler_config.json
    provenance.json                      (singlink's record of how the weights were made, optional)

so a singlink prior loads in diffusers (``DDPMPipeline.from_pretrained(folder)``) and a diffusers
DDPM loads here (:meth:`DiffusionPrior.from_pretrained` takes a folder, the name of a prior
shipped in ``singlink/checkpoints/``, or a Hugging Face model id).

    >>> prior = DiffusionPrior.from_pretrained("ddpm-cifar10-32-singlink")
    >>> x_t = prior.to_model_range(images01)            # (N, 3, 32, 32) in [-1, 1]
    >>> noise_hat = prior.eps(x_t, 999)
"""
import io
import json
import math
import re
from pathlib import Path

import torch
from torch import nn

import singlink

from ..errors import UsageError

CHECKPOINTS = Path(singlink.__file__).resolve().parent / "checkpoints"

# UNet2DModel presets (parameter counts in the comments; any preset takes any image size that its
# number of down-sampling levels divides).
PRESETS = {
    # 0.16 M: for tests; no attention.
    "tiny": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D")),
    # 1.1 M: trains on a 2-core CPU in a working session (about 1 s per step at batch 64 on 2 free cores).
    "small": dict(block_out_channels=(32, 64, 64), layers_per_block=1, attention_head_dim=None,
                  down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")),
    # 3.0 M at 64x64 (faces): channels 32/64/64/128, attention at 16x16, one layer per block; about
    # 1.8 s per training step at batch 32 on 2 free cores (ENVIRONMENT.md).
    "small64": dict(block_out_channels=(32, 64, 64, 128), layers_per_block=1, attention_head_dim=None,
                    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
    # 35.7 M: the architecture of google/ddpm-cifar10-32 (Ho et al. 2020, attention at 16x16); for GPUs.
    "base": dict(block_out_channels=(128, 256, 256, 256), layers_per_block=2, attention_head_dim=None,
                 down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                 downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6),
}

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def make_unet(config_name: str, image_size: int = 32):
    """A freshly initialised ``UNet2DModel`` (3 channels in and out) of preset ``config_name``
    (see :data:`PRESETS`). Initialisation uses torch's global RNG: seed it first."""
    from diffusers import UNet2DModel

    if config_name not in PRESETS:
        raise UsageError(f"unknown UNet preset {config_name!r}; choose one of {', '.join(PRESETS)}")
    return UNet2DModel(sample_size=image_size, in_channels=3, out_channels=3, **PRESETS[config_name])


def make_scheduler():
    """The DDPM noise schedule: linear betas 1e-4 .. 0.02, T = 1000, epsilon prediction."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         prediction_type="epsilon")


def _betas_float64(config) -> torch.Tensor:
    """The scheduler's betas computed in float64 (diffusers keeps them in float32)."""
    t = config.num_train_timesteps
    if config.trained_betas is not None:
        return torch.tensor(config.trained_betas, dtype=torch.float64)
    if config.beta_schedule == "linear":
        return torch.linspace(config.beta_start, config.beta_end, t, dtype=torch.float64)
    if config.beta_schedule == "scaled_linear":
        return torch.linspace(config.beta_start ** 0.5, config.beta_end ** 0.5, t, dtype=torch.float64) ** 2
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(config).betas.to(torch.float64)


def find_prior(dataset: str, image_size: int) -> str:
    """The shipped prior trained on ``dataset`` at ``image_size`` (by its ``provenance.json``; priors
    that predate the record are CIFAR-10 32x32). One line when none is shipped."""
    have = []
    for name in available():
        prov = CHECKPOINTS / name / "provenance.json"
        config = json.loads(prov.read_text()).get("config", {}) if prov.is_file() else {}
        data, size = config.get("dataset", "cifar10"), config.get("image_size", 32)
        have.append(f"{name} ({data}, {size}x{size})")
        if data == dataset and int(size) == int(image_size):
            return name
    raise UsageError(f"no shipped diffusion prior for {dataset} at {image_size}x{image_size}; shipped: "
                     f"{', '.join(have) or 'none'}; train one with `singlink train-prior --dataset {dataset}` "
                     "or pass a prior folder")


def available() -> list[str]:
    """Names of the diffusion priors shipped in ``singlink/checkpoints/``."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "model_index.json").is_file())


class DiffusionPrior(nn.Module):
    """A DDPM epsilon-prediction UNet and its noise schedule.

    Attributes used by the SING sampler: :meth:`eps`, :attr:`alphas_cumprod` (float64, CPU),
    :attr:`num_train_timesteps`, :attr:`image_size` ``(C, H, W)``, :meth:`to_model_range`,
    :meth:`to_image_range`, :meth:`check_images`. ``name`` labels the prior in messages.

    Any beta schedule stored with the scheduler is accepted (the DDPM linear one for singlink's
    priors); :attr:`alphas_cumprod` always follows the scheduler. The UNet must predict the noise
    (``prediction_type`` ``"epsilon"``) and output as many channels as it takes.
    """

    def __init__(self, unet, scheduler, name: str = "unsaved prior"):
        super().__init__()
        if scheduler.config.prediction_type != "epsilon":
            raise UsageError(f"the prior {name} predicts {scheduler.config.prediction_type!r}; SING needs a DDPM "
                             f"that predicts the noise (prediction_type 'epsilon')")
        if unet.config.out_channels != unet.config.in_channels:
            raise UsageError(f"the prior {name} outputs {unet.config.out_channels} channels for "
                             f"{unet.config.in_channels} in; SING needs a plain noise predictor (out = in channels)")
        self.unet = unet
        self.scheduler = scheduler
        self.name = name
        self._alphas_cumprod = torch.cumprod(1 - _betas_float64(scheduler.config), 0)

    # --- the sampler's interface ------------------------------------------------------
    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """(T,) float64 on the CPU: the product of (1 - beta_s) for s <= t."""
        return self._alphas_cumprod

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def image_size(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the prior models."""
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return int(self.unet.config.in_channels), int(h), int(w)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def eps(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """Predicted noise for ``x_t`` (N, C, H, W) in model range at timesteps ``t`` (an int or an
        (N,) integer tensor in [0, T-1]). Returned in ``x_t``'s dtype; gradients flow through."""
        t = torch.as_tensor(t, device=x_t.device)
        if t.is_floating_point() or t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x_t.shape[0]):
            raise UsageError(f"eps takes integer timesteps, one or one per image ({x_t.shape[0]}), got "
                             f"{t.dtype} of shape {tuple(t.shape)}")
        if int(t.min()) < 0 or int(t.max()) >= self.num_train_timesteps:
            raise UsageError(f"timesteps must lie in [0, {self.num_train_timesteps - 1}], got "
                             f"{int(t.min())}..{int(t.max())}")
        t = t.expand(x_t.shape[0]).long()
        return self.unet(x_t.to(self.dtype), t).sample.to(x_t.dtype)

    @staticmethod
    def to_model_range(x01: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] to the UNet's range [-1, 1]."""
        return 2 * x01 - 1

    @staticmethod
    def to_image_range(x: torch.Tensor) -> torch.Tensor:
        """The UNet's range [-1, 1] to images in [0, 1] (clamped)."""
        return ((x + 1) / 2).clamp(0, 1)

    def check_images(self, x01: torch.Tensor) -> None:
        """Raise a one-line :class:`UsageError` unless ``x01`` is (N,) C x H x W of the prior's size."""
        want = "x".join(map(str, self.image_size))
        if x01.ndim not in (3, 4):
            raise UsageError(f"the prior {self.name} takes images (N, C, H, W), got shape {tuple(x01.shape)}")
        got = "x".join(map(str, x01.shape[-3:]))
        if got != want:
            raise UsageError(f"the prior {self.name} models {want} images, got {got}; use a prior trained at that size")

    # --- construction and storage ------------------------------------------------------
    @classmethod
    def from_preset(cls, preset: str, name: str | None = None) -> "DiffusionPrior":
        """A new, untrained prior: :func:`make_unet` ``(preset)`` with :func:`make_scheduler`."""
        return cls(make_unet(preset), make_scheduler(), name=name or f"untrained {preset} prior")

    def save_pretrained(self, folder, fp16: bool = False, extra: dict | None = None) -> None:
        """Write the DDPMPipeline layout to ``folder``; ``fp16`` stores the weights in float16
        (half the size; loading casts them back). ``extra`` goes to ``provenance.json``."""
        import diffusers
        from safetensors.torch import save_file

        from ..provenance import write_atomic

        folder = Path(folder)
        (folder / "unet").mkdir(parents=True, exist_ok=True)
        self.unet.save_config(folder / "unet")
        weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
        state = {k: (v.half() if fp16 and v.is_floating_point() else v).detach().contiguous().cpu()
                 for k, v in self.unet.state_dict().items()}
        save_file(state, str(weights.with_suffix(".tmp")), metadata={"format": "pt"})
        weights.with_suffix(".tmp").replace(weights)
        self.scheduler.save_pretrained(folder / "scheduler")
        index = {"_class_name": "DDPMPipeline", "_diffusers_version": diffusers.__version__,
                 "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
        write_atomic(folder / "model_index.json", json.dumps(index, indent=2) + "\n")
        if extra:
            write_atomic(folder / "provenance.json", json.dumps(extra, indent=1))
        else:
            (folder / "provenance.json").unlink(missing_ok=True)

    @classmethod
    def from_pretrained(cls, name_or_path, device="cpu", dtype=torch.float32) -> "DiffusionPrior":
        """Load a prior from a local folder, a shipped name (:func:`available`) or a Hugging Face
        model id such as ``google/ddpm-cifar10-32`` (needs network). Returned in eval mode."""
        from diffusers import DDPMScheduler, UNet2DModel

        text = str(name_or_path)
        folder = Path(name_or_path)
        if not folder.is_dir() and (CHECKPOINTS / text).is_dir():
            folder = CHECKPOINTS / text
        if folder.is_dir():
            missing = [f for f in ("unet/config.json", "scheduler/scheduler_config.json") if not (folder / f).is_file()]
            if missing:
                raise UsageError(f"{folder} is not a DDPM prior folder: it lacks {', '.join(missing)} "
                                 f"(save one with DiffusionPrior.save_pretrained)")
            source, name = str(folder), folder.name
        elif HUB_ID.match(text):
            source, name = text, text
        else:
            raise UsageError(f"no prior {text!r}: not a folder, not a shipped prior (shipped: "
                             f"{', '.join(available()) or 'none'}), not a Hugging Face id (owner/name)")
        try:
            unet = UNet2DModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, low_cpu_mem_usage=False)
            scheduler = DDPMScheduler.from_pretrained(source, subfolder="scheduler")
        except (OSError, ValueError) as e:
            if folder.is_dir():
                raise UsageError(f"corrupt prior in {folder}: {str(e).strip().splitlines()[0][:200]}") from None
            raise UsageError(f"could not fetch the prior {text!r} (no local folder of that name) from the Hugging Face "
                             f"hub: no network is reachable or the id is wrong; pass a local folder (DDPMPipeline "
                             f"layout) or a shipped prior ({', '.join(available()) or 'none shipped'})") from None
        return cls(unet.to(device), scheduler, name=name).eval()


@torch.no_grad()
def unconditional_samples(prior: DiffusionPrior, n: int, steps: int = 100, seed: int = 0,
                          batch: int = 64) -> torch.Tensor:
    """``n`` ancestral DDPM samples (diffusers' DDPMScheduler, ``set_timesteps(steps)``) as images
    in [0, 1], (n, C, H, W) on the CPU. Seeded: the same seed gives the same images."""
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(prior.scheduler.config)
    scheduler.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        x = torch.randn((min(batch, n - i), *prior.image_size), generator=g).to(prior.device)
        for t in scheduler.timesteps:
            x = scheduler.step(prior.eps(x, int(t)), t, x, generator=g).prev_sample
        out.append(prior.to_image_range(x.float()).cpu())
    return torch.cat(out)


def save_grid(images01: torch.Tensor, path, nrow: int | None = None, padding: int = 2) -> None:
    """Write images (N, C, H, W) in [0, 1] as one PNG grid of ``nrow`` per row (default square)."""
    from PIL import Image

    from ..provenance import write_atomic

    n, c, h, w = images01.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = torch.ones(c, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for k, img in enumerate(images01.detach().float().cpu().clamp(0, 1)):
        r, col = divmod(k, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, y:y + h, x:x + w] = img
    pixels = (grid * 255).round().to(torch.uint8).permute(1, 2, 0).squeeze(-1).numpy()
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
