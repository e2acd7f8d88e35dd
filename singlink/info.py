"""``singlink info``: what singlink runs on."""
import json


def add_arguments(parser):
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args):
    from importlib.metadata import version

    from . import phy  # on sionna-tf: memory growth before TF lists devices
    import torch

    from .provenance import code_version

    info = dict(code_version())  # with phy_backend and sionna
    tf = None
    if phy.BACKEND == "sionna-tf":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    info["torch"] = torch.__version__
    info["numpy"] = version("numpy")
    try:
        from gnuradio import gr

        info["gnuradio"] = gr.version()
    except ImportError as e:
        info["gnuradio"] = f"unavailable ({e})"
    if tf is not None:
        info["tf_gpus"] = [d.name for d in tf.config.list_logical_devices("GPU")]
    info["torch_cuda"] = torch.cuda.is_available()
    if args.json:
        print(json.dumps(info))
    else:
        for k, v in info.items():
            print(f"{k:12s} {v}")
    return 0
