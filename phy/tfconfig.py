"""TensorFlow/Sionna process set-up shared by every phy module.

Imported first by :mod:`singlink.phy`. It turns on GPU memory growth before TensorFlow
initialises its devices, so TensorFlow does not reserve all GPU memory and PyTorch (models,
receiver) can share the same GPU.
"""
import tensorflow as tf  # TF_CPP_MIN_LOG_LEVEL is set by singlink/__init__.py, before any import


def _enable_memory_growth():
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # Devices were initialised before singlink was imported: growth can no longer be
            # changed, and TensorFlow keeps whatever policy the user chose.
            pass


_enable_memory_growth()


def set_seed(seed: int) -> None:
    """Seed Sionna's random generators (TF, NumPy, Python), from which all phy draws come.

    Every random draw of phy (noise, fading, source bits) uses ``sionna.phy.config.tf_rng``;
    re-seeding with the same integer reproduces a run bit for bit on CPU.
    """
    from sionna.phy import config

    config.seed = int(seed)
