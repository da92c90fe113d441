"""An independent NumPy/PyTorch implementation of the DiT reference diffusion
(IDDPM GaussianDiffusion + SpacedDiffusion as DiT configures them: linear betas,
epsilon prediction, learned-range variance, MSE + VB loss), for test fixtures."""
import numpy as np
import torch


def space_timesteps(T, spec):
    if spec.startswith("ddim"):
        want = int(spec[4:])
        for i in range(1, T):
            if len(range(0, T, i)) == want:
                return set(range(0, T, i))
        raise ValueError(spec)
    counts = [int(x) for x in spec.split(",")]
    size_per, extra = T // len(counts), T % len(counts)
    start, steps = 0, []
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        cur = 0.0
        for _ in range(count):
            steps.append(start + round(cur))
            cur += stride
        start += size
    return set(steps)


def take(arr, t, ndim):
    out = torch.from_numpy(arr)[t.cpu()].float().to(t.device)
    return out.view(-1, *([1] * (ndim - 1)))


class Diffusion:
    def __init__(self, T=1000, respacing=None):
        scale = 1000 / T
        base = np.linspace(scale * 0.0001, scale * 0.02, T, dtype=np.float64)
        abar = np.cumprod(1.0 - base, axis=0)
        keep = space_timesteps(T, respacing) if respacing else set(range(T))
        self.map, betas, last = [], [], 1.0
        for i, a in enumerate(abar):
            if i in keep:
                betas.append(1 - a / last)
                last = a
                self.map.append(i)
        b = np.array(betas, dtype=np.float64)
        self.num = len(b)
        self.betas = b
        self.abar = np.cumprod(1.0 - b, axis=0)
        self.abar_prev = np.append(1.0, self.abar[:-1])
        self.sqrt_recip = np.sqrt(1.0 / self.abar)
        self.sqrt_recipm1 = np.sqrt(1.0 / self.abar - 1)
        self.post_var = b * (1.0 - self.abar_prev) / (1.0 - self.abar)
        self.post_logvar = np.log(np.append(self.post_var[1], self.post_var[1:]))
        self.c1 = b * np.sqrt(self.abar_prev) / (1.0 - self.abar)
        self.c2 = (1.0 - self.abar_prev) * np.sqrt(1.0 - b) / (1.0 - self.abar)

    def q_sample(self, x0, t, noise):
        return take(np.sqrt(self.abar), t, x0.ndim) * x0 + take(np.sqrt(1.0 - self.abar), t, x0.ndim) * noise

    def posterior(self, x0, xt, t):
        n = xt.ndim
        return take(self.c1, t, n) * x0 + take(self.c2, t, n) * xt, take(self.post_logvar, t, n)

    def p_mean_var(self, out, x, t, clip=False):
        c = x.shape[1]
        eps, v = out[:, :c], out[:, c:]
        min_log, max_log = take(self.post_logvar, t, x.ndim), take(np.log(self.betas), t, x.ndim)
        frac = (v + 1) / 2
        logvar = frac * max_log + (1 - frac) * min_log
        x0 = take(self.sqrt_recip, t, x.ndim) * x - take(self.sqrt_recipm1, t, x.ndim) * eps
        if clip:  # ADM's clip_denoised: the posterior (and DDIM's eps) use the clamped x0
            x0 = x0.clamp(-1, 1)
        mean, _ = self.posterior(x0, x, t)
        return mean, logvar, x0

    def losses(self, out, x0, xt, t, noise):
        c = x0.shape[1]
        mse = ((noise - out[:, :c]) ** 2).mean(dim=(1, 2, 3))
        frozen = torch.cat([out[:, :c].detach(), out[:, c:]], dim=1)
        true_mean, true_logvar = self.posterior(x0, xt, t)
        mean, logvar, _ = self.p_mean_var(frozen, xt, t)
        kl = 0.5 * (-1.0 + logvar - true_logvar + torch.exp(true_logvar - logvar)
                    + (true_mean - mean) ** 2 * torch.exp(-logvar))
        kl = kl.mean(dim=(1, 2, 3)) / np.log(2.0)

        def cdf(v):
            return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (v + 0.044715 * torch.pow(v, 3))))
        centered = x0 - mean
        inv = torch.exp(-0.5 * logvar)
        cdf_plus, cdf_min = cdf(inv * (centered + 1 / 255.0)), cdf(inv * (centered - 1 / 255.0))
        lp = torch.where(x0 < -0.999, torch.log(cdf_plus.clamp(min=1e-12)),
                         torch.where(x0 > 0.999, torch.log((1 - cdf_min).clamp(min=1e-12)),
                                     torch.log((cdf_plus - cdf_min).clamp(min=1e-12))))
        nll = (-lp).mean(dim=(1, 2, 3)) / np.log(2.0)
        vb = torch.where(t == 0, nll, kl)
        return mse, vb, mse + vb

    def sample(self, model, x, ddim=False, clip=False, noise_like=torch.randn_like):
        """model(x, original_t) -> output; each step's noise from noise_like(x) (the default
        generator), drawn after the model call."""
        mapping = torch.tensor(self.map, device=x.device)
        for i in reversed(range(self.num)):
            t = torch.tensor([i] * x.shape[0], device=x.device)
            out = model(x, mapping[t])
            mean, logvar, x0 = self.p_mean_var(out, x, t, clip)
            noise = noise_like(x)
            mask = (t != 0).float().view(-1, 1, 1, 1)
            if ddim:
                eps = (take(self.sqrt_recip, t, 4) * x - x0) / take(self.sqrt_recipm1, t, 4)
                ab, abp = take(self.abar, t, 4), take(self.abar_prev, t, 4)
                sigma = 0.0 * torch.sqrt((1 - abp) / (1 - ab)) * torch.sqrt(1 - ab / abp)
                x = x0 * torch.sqrt(abp) + torch.sqrt(1 - abp - sigma ** 2) * eps + mask * sigma * noise
            else:
                x = mean + mask * torch.exp(0.5 * logvar) * noise
        return x
