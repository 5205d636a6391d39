"""K models of one shape as one module: the students of `kdlib.batched.train_seeds`.

Every stacked model holds seed k's parameters at index k of (K, ...) tensors and maps K seeds'
inputs (K, B, ...) to their logits (K, B, C), plus (``forward(x, features=True)``) the output of
the model's ``features`` module, flattened to (K, B, D): what a forward hook on ``features``
captures (`kdlib.hooks`) for relation methods such as RKD. Every matmul is a batched matmul over
the seed axis (`_StackedLinear`), convolutions are im2col + batched matmul: one kernel for K
seeds, where the one-seed loop runs K small ones.

* `StackedMLP` (kdlib `MLP`): bit-identical to K `MLP`s, forward and backward (at one thread;
  tests/test_batched.py).
* `StackedCNN1D` (`CNN1D`), `StackedPatchTransformer` (`PatchTransformer`) and `StackedGPT2`
  (the tiny Hugging Face GPT-2 students of `kdlib.lm.models`, benchmarked only): the same
  arithmetic summed in another order (im2col + bmm instead of oneDNN's convolution, bmm
  backward instead of addmm's, LayerNorm then its affine instead of the fused kernel), so seed
  k's logits and gradients equal its own model's to float32 round-off (<= ~1e-6 of each
  tensor's largest entry; tests/test_stacked_models.py), not bit for bit.

Where a batched step's time goes at the book's sizes (one thread, K = 10; `make bench`): the
matmuls are thin (25 to 128 channels), so elementwise work, im2col copies, the per-sequence
attention kernel (P = 10 tokens, 8-dim heads: its cost is per sequence, batching does not
shrink it) and the optimiser take most of it, not GEMM.

``copy_to(students)`` writes seed k's trained parameters back into students[k].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .models.small import CNN1D, MLP
from .models.transformer import PatchTransformer


class _StackedLinear(torch.autograd.Function):
    """K linear layers at once, y_k = x_k W_k^T + b_k, slice for slice as F.linear computes it.

    x (K, B, in), weight (K, out, in), bias (K, out) -> (K, B, out). On the CPU F.linear is
    addmm(b, x, W^T), whose backward forms grad_W = grad^T x (in W's orientation) and
    grad_x = grad W. Autograd through baddbmm would form grad_W as (x^T grad)^T, which rounds
    differently in the last bit; so the backward is written out here, and each seed's
    gradient equals the one-seed loop's bit for bit (tested).
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        return grad_x, torch.bmm(grad.transpose(1, 2), x), grad.sum(1)


def linear(x, weight, bias):
    """(K, ..., in) through K linear layers (weight (K, out, in), bias (K, out)) -> (K, ..., out)."""
    shape = x.shape
    out = _StackedLinear.apply(x.reshape(shape[0], -1, shape[-1]), weight, bias)
    return out.view(*shape[:-1], weight.shape[1])


class StackedMLP(nn.Module):
    """K `MLP`s of one shape as stacked parameters: layer i has weight (K, out, in) and bias (K, out)."""

    def __init__(self, students):
        super().__init__()
        layers = [_linears(s) for s in students]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach() for ls in layers])) for i in range(len(layers[0])))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach() for ls in layers])) for i in range(len(layers[0])))

    def forward(self, x, features: bool = False):
        """(K, B, in_dim) -> (K, B, num_classes): Linear, ReLU, ..., Linear, as `MLP.forward`
        (features=True: also the (K, B, width) output of `MLP.features`, the last hidden ReLU)."""
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            if i:
                x = torch.relu(x)
            if i == last:
                h = x
            x = _StackedLinear.apply(x, weight, bias)
        return (x, h) if features else x

    @torch.no_grad()
    def copy_to(self, students):
        """Write seed k's trained parameters into students[k] (ordinary `MLP`s)."""
        for k, student in enumerate(students):
            for layer, weight, bias in zip(_linears(student), self.weights, self.biases):
                layer.weight.copy_(weight[k])
                layer.bias.copy_(bias[k])


def _linears(student):
    return [m for m in student.modules() if isinstance(m, nn.Linear)]


class _Stacked(nn.Module):
    """K models of one class and shape: ``self.p[name]`` is parameter `name` of every seed, (K, *shape)."""

    def __init__(self, students):
        super().__init__()
        self.names = [name for name, _ in students[0].named_parameters()]
        self.p = nn.ParameterDict({
            name.replace(".", "/"): nn.Parameter(torch.stack([dict(s.named_parameters())[name].detach()
                                                              for s in students]))
            for name in self.names})

    def __getitem__(self, name):
        return self.p[name.replace(".", "/")]

    @torch.no_grad()
    def copy_to(self, students):
        for k, student in enumerate(students):
            for name, param in student.named_parameters():
                param.copy_(self[name][k])


class _Im2col(torch.autograd.Function):
    """The columns of a zero-padded 1-D convolution, channels last: x (K, B, L, C) ->
    (K, B, Lout, k, C), column (j, c) = x[l * stride + j - padding, c] (0 outside x).

    Forward: the k strided slices of the padded input, stacked. Backward: their gradients added
    in place into one zero buffer, where autograd through pad + slices + stack would fill and
    copy a zero tensor per slice (measured: the largest cost of the batched CNN1D step)."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        length = x.shape[2] + 2 * padding
        l_out = (length - kernel) // stride + 1
        ctx.shape, ctx.geometry = x.shape, (kernel, stride, padding, l_out)
        xp = F.pad(x, (0, 0, padding, padding)) if padding else x
        stop = stride * (l_out - 1) + 1
        return torch.stack([xp[:, :, j:j + stop:stride] for j in range(kernel)], 3)

    @staticmethod
    def backward(ctx, grad):
        kernel, stride, padding, l_out = ctx.geometry
        k_seeds, batch, length, channels = ctx.shape
        gp = grad.new_zeros(k_seeds, batch, length + 2 * padding, channels)
        stop = stride * (l_out - 1) + 1
        for j in range(kernel):
            gp[:, :, j:j + stop:stride] += grad[:, :, :, j]
        return gp[:, :, padding:padding + length], None, None, None


def _conv1d(x, weight, bias, stride, padding):
    """K Conv1d layers (no dilation) as im2col + one batched matmul, channels last: x (K, B, L, Cin),
    weight (K, Cout, Cin, k), bias (K, Cout) -> (K, B, Lout, Cout)."""
    k_seeds, batch, _, c_in = x.shape
    kernel = weight.shape[-1]
    cols = _Im2col.apply(x, kernel, stride, padding)  # (K, B, Lout, k, Cin)
    l_out = cols.shape[2]
    w = weight.transpose(2, 3).reshape(k_seeds, weight.shape[1], kernel * c_in)  # columns (j, c), as cols'
    out = _StackedLinear.apply(cols.view(k_seeds, batch * l_out, kernel * c_in), w, bias)
    return out.view(k_seeds, batch, l_out, -1)


class StackedCNN1D(_Stacked):
    """K `CNN1D`s: (K, B, L) or (K, B, 1, L) -> (K, B, num_classes); activations channels-last."""

    def __init__(self, students):
        super().__init__(students)
        self.convs = [(name, m.stride[0], m.padding[0]) for name, m in students[0].named_modules()
                      if isinstance(m, nn.Conv1d)]

    def forward(self, x, features: bool = False):
        h = x.reshape(x.shape[0], x.shape[1], -1, 1)  # (K, B, L, Cin = 1)
        for name, stride, padding in self.convs:
            h = torch.relu(_conv1d(h, self[f"{name}.weight"], self[f"{name}.bias"], stride, padding))
        h = h.transpose(2, 3).flatten(2)  # (K, B, C * L), flattened as nn.Flatten does (N, C, L)
        logits = linear(h, self["fc.weight"], self["fc.bias"])
        return (logits, h) if features else logits


def _layer_norm(x, weight, bias, eps):
    """K LayerNorms over the last axis: x (K, ..., D), weight and bias (K, D)."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return F.layer_norm(x, x.shape[-1:], eps=eps) * weight.view(shape) + bias.view(shape)


class StackedPatchTransformer(_Stacked):
    """K `PatchTransformer`s (no dropout): (K, B, L) -> (K, B, num_classes).

    Attention is the one-seed model's own kernel (scaled_dot_product_attention) on K * B
    sequences: it works per sequence, so only the projections are stacked."""

    def __init__(self, students):
        super().__init__(students)
        model = students[0]
        self.depth, self.patch = model.depth, model.features[0].proj.kernel_size[0]
        self.heads = model.features[1].attn.num_heads
        self.eps = model.features[1].norm1.eps

    def forward(self, x, features: bool = False):
        k_seeds, batch = x.shape[:2]
        p = self.__getitem__
        patches = x.reshape(k_seeds, batch, -1, self.patch)  # (K, B, P, patch)
        h = linear(patches, p("features.0.proj.weight").flatten(2), p("features.0.proj.bias"))
        h = h + p("features.0.pos")  # (K, 1, P, D) broadcast over the batch
        tokens, dim = h.shape[2], h.shape[3]
        hd = dim // self.heads
        for i in range(1, self.depth + 1):
            b = f"features.{i}."
            a = _layer_norm(h, p(b + "norm1.weight"), p(b + "norm1.bias"), self.eps)
            q, k, v = linear(a, p(b + "attn.in_proj_weight"), p(b + "attn.in_proj_bias")).chunk(3, -1)
            q, k, v = (t.reshape(k_seeds * batch, tokens, self.heads, hd).transpose(1, 2) for t in (q, k, v))
            att = F.scaled_dot_product_attention(q, k, v)  # (K * B, H, P, hd)
            att = att.transpose(1, 2).reshape(k_seeds, batch, tokens, dim)
            h = h + linear(att, p(b + "attn.out_proj.weight"), p(b + "attn.out_proj.bias"))
            m = _layer_norm(h, p(b + "norm2.weight"), p(b + "norm2.bias"), self.eps)
            m = F.gelu(linear(m, p(b + "mlp.0.weight"), p(b + "mlp.0.bias")))
            h = h + linear(m, p(b + "mlp.2.weight"), p(b + "mlp.2.bias"))
        n = f"features.{self.depth + 1}.norm."
        pooled = _layer_norm(h, p(n + "weight"), p(n + "bias"), self.eps).mean(2)  # (K, B, D)
        logits = linear(pooled, p("fc.weight"), p("fc.bias"))
        return (logits, pooled) if features else logits


class StackedGPT2(_Stacked):
    """K tiny Hugging Face `GPT2LMHeadModel`s of one config (no dropout, tied head, as
    `kdlib.lm.models.build_lm` makes them): tokens (K, B, T) -> logits (K, B, T, V).

    The model's own operations (causal attention through scaled_dot_product_attention, the tanh
    GELU of ``gelu_new``, LayerNorm then its affine), stacked over the seed axis: equal to
    ``model(tokens[k]).logits`` to float32 round-off. Benchmarked in benchmarks/bench_lm.py;
    the LM chapters still train one seed at a time."""

    def __init__(self, students):
        super().__init__(students)
        config = students[0].config
        if config.activation_function != "gelu_new" or any(
                getattr(config, f) for f in ("resid_pdrop", "embd_pdrop", "attn_pdrop")):
            raise ValueError("StackedGPT2: needs gelu_new and no dropout (kdlib.lm.models.build_lm's students)")
        self.n_layer, self.heads, self.eps = config.n_layer, config.n_head, config.layer_norm_epsilon

    def forward(self, tokens):
        p = self.__getitem__
        k_seeds, batch, length = tokens.shape
        wte = p("transformer.wte.weight")  # (K, V, D), also the tied head
        vocab, dim = wte.shape[1:]
        offsets = torch.arange(k_seeds, device=tokens.device).view(-1, 1, 1) * vocab
        h = F.embedding(tokens + offsets, wte.reshape(k_seeds * vocab, dim))  # seed k's rows of its own table
        h = h + p("transformer.wpe.weight")[:, None, :length]
        hd = dim // self.heads
        def conv1d(x, name):  # HF Conv1D: y = x W + b with W (in, out)
            return linear(x, p(name + ".weight").transpose(1, 2), p(name + ".bias"))

        for i in range(self.n_layer):
            b = f"transformer.h.{i}."
            a = _layer_norm(h, p(b + "ln_1.weight"), p(b + "ln_1.bias"), self.eps)
            q, k, v = conv1d(a, b + "attn.c_attn").chunk(3, -1)
            q, k, v = (t.reshape(k_seeds * batch, length, self.heads, hd).transpose(1, 2) for t in (q, k, v))
            att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            att = att.transpose(1, 2).reshape(k_seeds, batch, length, dim)
            h = h + conv1d(att, b + "attn.c_proj")
            m = _layer_norm(h, p(b + "ln_2.weight"), p(b + "ln_2.bias"), self.eps)
            h = h + conv1d(F.gelu(conv1d(m, b + "mlp.c_fc"), approximate="tanh"), b + "mlp.c_proj")
        h = _layer_norm(h, p("transformer.ln_f.weight"), p("transformer.ln_f.bias"), self.eps)
        return torch.bmm(h.reshape(k_seeds, batch * length, dim), wte.transpose(1, 2)).view(k_seeds, batch, length, vocab)


STACKED = {MLP: StackedMLP, CNN1D: StackedCNN1D, PatchTransformer: StackedPatchTransformer}


def why_not_stackable(students) -> str | None:
    """Why these models cannot be stacked (one line), or None if they can."""
    kind = type(students[0])
    if kind not in STACKED:
        return f"{kind.__name__} is not a kdlib MLP, CNN1D or PatchTransformer"
    if any(type(s) is not kind for s in students):
        return "the students differ in class"
    shapes = {tuple((n, tuple(p.shape)) for n, p in s.named_parameters()) for s in students}
    if len(shapes) > 1:
        return "the students differ in shape"
    if any(True for s in students for _ in s.buffers()):
        return "the students have buffers (BatchNorm)"
    for student in students:
        if kind is MLP and any(not isinstance(m, (MLP, nn.Sequential, nn.Linear, nn.ReLU)) for m in student.modules()):
            return "the MLP has layers other than Linear and ReLU (dropout)"
        if kind is CNN1D and any(not isinstance(m, (CNN1D, nn.Sequential, nn.Conv1d, nn.ReLU, nn.Flatten, nn.Linear))
                                 for m in student.modules()):
            return "the CNN1D has layers other than Conv1d, ReLU, Flatten and Linear"
        if kind is CNN1D and (student.features[0].in_channels != 1 or any(
                m.dilation != (1,) or m.groups != 1 or m.padding_mode != "zeros"
                for m in student.modules() if isinstance(m, nn.Conv1d))):
            return "the CNN1D has several input channels, or dilated, grouped or non-zero-padded convolutions"
        if kind is PatchTransformer:
            if any(isinstance(m, nn.Dropout) and m.p > 0 for m in student.modules()) or any(
                    isinstance(m, nn.MultiheadAttention) and m.dropout > 0 for m in student.modules()):
                return "the PatchTransformer has dropout"
            if any(isinstance(m, nn.GELU) and m.approximate != "none" for m in student.modules()):
                return "the PatchTransformer's GELU is approximate"
    return None


def stack(students) -> nn.Module:
    """The stacked module of K students of one class and shape (see `why_not_stackable`)."""
    return STACKED[type(students[0])](students)
