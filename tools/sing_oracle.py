"""Where SING-Zero's result is decided: the prior, or what it is told to keep?

SING-Zero keeps A x_JSCC (the decoded image's coarse content) and lets the prior fill A's null space.
This diagnostic gives it, on the same validation images and sampling noise, three observations:

- ``jscc``:   A x_JSCC, as in the receiver (x_JSCC decoded after the AWGN channel at ``--snr``);
- ``oracle``: A x, the coarse content of the original image (what a perfect codec would keep);
- and scores the observation alone, A^+ A x and A^+ A x_JSCC (the pooled image, blocky).

If the oracle restoration scores far better than DeepJSCC, the prior can draw faces that fit and the
limit is the decoded coarse content; if it does not, the prior is the limit.

With ``--inn`` it also scores what SING-INN's guidance pulls towards (Algorithm 2, line 8) when the
diffusion's details are perfect: x~ = INN^{-1}(coarse(x_JSCC), d), with d the INN's detail part of the
original image, beside the same with a plain Haar split (the INN untrained: the original's details on
DeepJSCC's LL band, which is SING-Zero pool2 with a perfect prior). If the trained INN's x~ is not
better than the Haar one, modelling the degradation gives the guidance nothing to pull towards. No
diffusion is run for these rows, so ``--operators ""`` with ``--images 256`` is quick. With operators,
it also scores the target with the details of SING-Zero's restoration (what the guidance sees at the
end of sampling): an INN whose inverse ignores the coarse part returns SING-Zero's image unchanged.

    .venv/bin/python tools/sing_oracle.py --dataset celeba --rho 1/192 --images 16 --snr 1 \
        --operators pool2,pool4,pool8 --steps 50

Prints a table (mean over images) and, last line, a JSON object.
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="celeba")
    ap.add_argument("--rho", default="1/192")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--snr", type=float, default=1.0)
    ap.add_argument("--operators", default="pool2,pool4,pool8")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--inn", nargs="?", const="", default=None, metavar="NAME",
                    help="also score SING-INN's guidance target with the true details, for this INN (name or folder; "
                         "default: the one shipped for the DeepJSCC)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from singlink import phy
    from singlink.data import DatasetSpec, load_batch
    from singlink.evaluation import model_snr, score
    from singlink.jscc.model import DeepJSCC, find_checkpoint
    from singlink.provenance import derive_seed
    from singlink.receiver import SINGZero, make_operator
    from singlink.receiver.prior import DiffusionPrior, find_prior

    spec = DatasetSpec.parse(args.dataset)
    size = spec.image_size
    k = phy.num_channel_symbols(args.rho, (3, size, size))
    jscc = DeepJSCC.from_pretrained(find_checkpoint(spec.name, size, k))
    prior = DiffusionPrior.from_pretrained(find_prior(spec.name, size)).eval()
    x, _ = load_batch(spec.dataset("val"), range(args.images))
    phy.set_seed(derive_seed(args.seed, "oracle", args.snr))
    with torch.no_grad():
        y, _ = phy.TFModule(phy.make_channel("awgn"))(jscc.encode(x, model_snr(args.snr)), args.snr)
        x_jscc = jscc.decode(y, torch.full((len(x),), args.snr))

    def mean(s):
        return {k: float(v.mean()) for k, v in s.items()}

    rows = {"deepjscc": mean(score(x_jscc, x))}
    if args.inn is not None:
        from singlink.receiver import ConditionalINN, haar_merge, haar_split

        from singlink.receiver.inn import find_inn

        inn = ConditionalINN.from_pretrained(args.inn or find_inn(jscc)).eval()
        snr = torch.full((len(x),), args.snr)

        def inn_target(source):
            """Line 8's x~: DeepJSCC's coarse band with the INN's details of ``source``."""
            return inn.inverse(inn.coarse(x_jscc), inn(source, snr)[1], snr).clamp(0, 1)

        with torch.no_grad():
            rows["haar: LL(x_jscc) + details of x"] = mean(score(haar_merge(haar_split(x_jscc)[0], haar_split(x)[1]).clamp(0, 1), x))
            rows["inn: INN^-1(coarse x_jscc, d(x))"] = mean(score(inn_target(x), x))
    for name in [o.strip() for o in args.operators.split(",") if o.strip()]:
        op = make_operator(name)
        sampler = SINGZero(prior, op, steps=args.steps)
        seeds = [derive_seed(args.seed, "oracle-noise", i) for i in range(len(x))]
        with torch.no_grad():
            rows[f"{name}: observation A+A x_jscc"] = mean(score(op.pinv(op(x_jscc)).clamp(0, 1), x))
            x_zero = sampler(x_jscc, args.snr, seed=seeds)
            rows[f"{name}: sing-zero on A x_jscc"] = mean(score(x_zero, x))
            if args.inn is not None:  # the guidance target at the end of SING-Zero's sampling
                rows[f"{name}: INN^-1(coarse x_jscc, d(sing-zero))"] = mean(score(inn_target(x_zero), x))
            rows[f"{name}: observation A+A x (oracle)"] = mean(score(op.pinv(op(x)).clamp(0, 1), x))
            rows[f"{name}: sing-zero on A x (oracle)"] = mean(score(sampler(x, args.snr, seed=seeds), x))
    print(f"{args.images} {spec.tag} validation images, rho {args.rho}, AWGN {args.snr:g} dB, {args.steps} steps")
    print(f"{'':44s} {'PSNR':>7s} {'MS-SSIM':>8s} {'LPIPS':>7s}")
    for name, r in rows.items():
        print(f"{name:44s} {r['psnr']:7.2f} {r['ms_ssim']:8.4f} {r['lpips']:7.4f}")
    print(json.dumps({"diagnostic": "sing_oracle", **vars(args), "rows": rows}))


if __name__ == "__main__":
    main()
