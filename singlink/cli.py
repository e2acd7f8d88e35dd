"""The ``singlink`` command line. Each subcommand lives in its own module and registers its
arguments here; heavy imports (TensorFlow, torch) happen only when a subcommand runs."""
import argparse
import os
import re
import sys

from .errors import UsageError

# name -> (module, one-line help). Modules expose add_arguments(parser) and run(args) -> int.
COMMANDS = {
    "sweep": ("singlink.sweep.command", "Monte Carlo sweep of DeepJSCC, SING and separation baselines over rho x SNR x channel, in-process or on Ray"),
    "link": ("singlink.linkdemo", "link-level BER/BLER demo: uncoded and LDPC-coded QPSK over AWGN and Rayleigh block fading"),
    "train-jscc": ("singlink.jscc.train", "train a DeepJSCC codec end to end through the Sionna AWGN channel (resumable)"),
    "evaluate": ("singlink.evaluate", "DeepJSCC and SING restorations of a data set's images through the channel: PSNR, MS-SSIM, LPIPS with 95%% CIs"),
    "tune-sing": ("singlink.tune", "choose SING's operator, steps and zeta for a DeepJSCC on validation images (and record them in its checkpoint)"),
    "calibrate-sigma-y": ("singlink.receiver.noise", "measure the error sigma_y of SING's observation A x_JSCC per operator and SNR on validation images (and record it in the DeepJSCC checkpoint)"),
    "train-prior": ("singlink.receiver.train_prior", "train the DDPM prior (diffusers UNet2DModel) on CIFAR-10 32x32, resumable, with EMA"),
    "train-inn": ("singlink.receiver.train_inn", "train SING-INN's conditional INN on (x, x_JSCC) pairs from a shipped DeepJSCC through the Sionna channel"),
    "info": ("singlink.info", "versions of singlink, Sionna, TensorFlow, torch, GNU Radio, and the devices they see"),
}


def build_parser() -> argparse.ArgumentParser:
    from importlib import import_module

    parser = argparse.ArgumentParser(prog="singlink", description="Link-level simulation of semantic image "
                                     "communication: DeepJSCC, SING restoration and separation baselines.")
    parser.add_argument("--phy", metavar="BACKEND",
                        help="phy backend: sionna-tf (default; Sionna 1.x on TensorFlow) or sionna-torch (Sionna 2 "
                        "on PyTorch, in .venv-sionna2: tools/bootstrap --sionna2); sets SINGLINK_PHY, and stored "
                        "results record it")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        import_module(module).add_arguments(p)
    return parser


# Options whose values are numbers or number lists: "--snr -5,-1,3" must not read "-5,-1,3" as an
# option (argparse only recognises plain negative numbers like "-5").
NUMERIC_OPTIONS = {"--snr", "--ebno", "--snr-range", "--rho"}


def _join_negative_values(argv):
    out = []
    for token in argv:
        if out and out[-1] in NUMERIC_OPTIONS and re.match(r"^-[\d.]", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def _choose_phy(name: str) -> None:
    """``--phy``: the backend singlink.phy will load (checked when it loads, singlink.phy.backend).
    A process holds one backend: once loaded, asking for the other is refused."""
    loaded = sys.modules.get("singlink.phy")
    if loaded is not None and getattr(loaded, "BACKEND", name) != name:
        raise UsageError(f"--phy {name}: this process already runs the {loaded.BACKEND} phy backend; "
                         f"start a new process for {name}")
    os.environ["SINGLINK_PHY"] = name


def main(argv=None) -> int:
    from importlib import import_module

    args = build_parser().parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        if args.phy is not None:
            _choose_phy(args.phy)
        return int(import_module(args._module).run(args) or 0)
    except UsageError as e:
        print(f"singlink {args.command}: error: {e}", file=sys.stderr)
        if e.exit_now:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt:
        print(f"singlink {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
