"""Running local causal LMs for judging and scoring.

`last_token_logits` does one forward pass per sequence but computes shared token prefixes once: the
sequences of a batch are arranged in a prefix tree, each tree level is one batched forward call that
extends its parents' KV cache, and each sequence's next-token logits are read at the end of its
node. Judge prompts share a lot (both orders of a pair share the instructions and the conversation,
pairs of one candidate set share those plus their first response, principles of one pair share
everything but the question), so this does much less work than running every sequence in full,
with the same result up to floating-point rounding (tested to 1e-5 on the probabilities).

Padding is on the left of every segment with explicit position ids, so a padded row computes exactly
what the unpadded sequence would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rankers.loading import LoadedModel
from rankers.types import Message

# Below this many shared tokens a separate tree level costs more (one more forward call) than it saves.
MIN_SHARED_TOKENS = 32


def render_chat(tokenizer: Any, messages: list[Message]) -> str:
    """The conversation under the model's chat template, ready for the assistant's answer."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` as is: the chat template already wrote any special tokens it needs."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[int]:
    """The first token of each label, as the model would write it at the start of its answer."""
    ids = []
    for label in labels:
        tokens = encode(tokenizer, label)
        if not tokens:
            raise ValueError(f"label {label!r} encodes to no token")
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"labels {list(labels)} share a first token under this tokenizer: {ids}")
    return ids


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The token the chat template writes right after an assistant turn (e.g. <|im_end|>)."""
    sentinel = "\u2063sentinel\u2063"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}, {"role": "assistant", "content": sentinel}], tokenize=False
        )
    except Exception:  # a template that cannot render an assistant turn
        text = ""
    if sentinel in text:
        rest = text.split(sentinel, 1)[1]
        ids = encode(tokenizer, rest) if rest else []
        if ids:
            return ids[0]
    return tokenizer.eos_token_id


def supports_prefix_sharing(model: Any) -> bool:
    """Whether extending a shared KV cache is exact for this model: full attention in every layer.

    Sliding-window and recurrent layers keep only part of the past, so sharing is switched off for
    them (each sequence then runs in full; results are the same, only slower).
    """
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text_config, "layer_types", None)
    if layer_types:
        return all(t == "full_attention" for t in layer_types)
    if getattr(text_config, "sliding_window", None) and getattr(text_config, "use_sliding_window", True):
        return False
    return getattr(text_config, "model_type", "") not in {"mamba", "mamba2", "rwkv", "jamba", "falcon_h1"}


@dataclass
class _Node:
    tokens: list[int]
    ends: list[int] = field(default_factory=list)  # sequences whose last token is this node's last
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None
    row: int = -1


def _common_prefix(seqs: list[Sequence[int]], start: int) -> int:
    first = seqs[0]
    limit = min(len(s) for s in seqs)
    n = start
    while n < limit and all(s[n] == first[n] for s in seqs):
        n += 1
    return n - start


def _build(seqs: list[list[int]], indices: list[int], edge_start: int, offset: int, min_shared: float) -> list[_Node]:
    """Nodes covering `indices`, which all share seqs[i][:offset]; their edges start at edge_start.

    A shared stretch shorter than `min_shared` gets no node of its own: its tokens are pushed down
    into the nodes below (computed once per child instead of once in all).
    """
    groups: dict[int, list[int]] = {}
    for i in indices:
        groups.setdefault(seqs[i][offset], []).append(i)
    nodes: list[_Node] = []
    for group in groups.values():
        if len(group) == 1:
            nodes.append(_Node(tokens=seqs[group[0]][edge_start:], ends=[group[0]]))
            continue
        end = offset + _common_prefix([seqs[i] for i in group], offset)
        ending = [i for i in group if len(seqs[i]) == end]
        rest = [i for i in group if len(seqs[i]) > end]
        if ending or end - edge_start >= min_shared:
            node = _Node(tokens=seqs[group[0]][edge_start:end], ends=ending)
            node.children = _build(seqs, rest, end, end, min_shared) if rest else []
            for child in node.children:
                child.parent = node
            nodes.append(node)
        else:
            nodes.extend(_build(seqs, rest, edge_start, end, min_shared))
    return nodes


def prefix_tree_levels(seqs: list[list[int]], *, min_shared: float = MIN_SHARED_TOKENS) -> list[list[_Node]]:
    """The prefix tree of `seqs`, level by level (level 0: the roots). Empty sequences are refused."""
    if any(len(s) == 0 for s in seqs):
        raise ValueError("cannot run an empty sequence")
    levels: list[list[_Node]] = []
    current = _build(seqs, list(range(len(seqs))), 0, 0, min_shared)
    while current:
        levels.append(current)
        current = [child for node in current for child in node.children]
    return levels


def tokens_computed(seqs: list[list[int]], *, min_shared: float = MIN_SHARED_TOKENS) -> int:
    """How many token positions the prefix tree actually runs (without padding)."""
    return sum(len(node.tokens) for level in prefix_tree_levels(seqs, min_shared=min_shared) for node in level)


def _left_pad(segments: list[list[int]], pad_id: int, device: str):
    import torch

    width = max(len(s) for s in segments)
    ids = torch.full((len(segments), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(segments), width), dtype=torch.long)
    for row, seg in enumerate(segments):
        ids[row, width - len(seg) :] = torch.tensor(seg, dtype=torch.long)
        mask[row, width - len(seg) :] = 1
    return ids.to(device), mask.to(device)


def last_token_logits(
    loaded: LoadedModel, seqs: list[list[int]], *, share_prefix: bool = True, min_shared: float = MIN_SHARED_TOKENS
):
    """Next-token logits after the last token of every sequence: a float32 tensor [len(seqs), vocab].

    With `share_prefix` (and a model that allows it), prefixes shared by several sequences are
    computed once; without it every sequence runs in full, all in one left-padded forward call.
    """
    import torch

    model, device = loaded.model, loaded.device
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    if not share_prefix or not supports_prefix_sharing(model):
        min_shared = float("inf")
    levels = prefix_tree_levels(seqs, min_shared=min_shared)
    out: list[Any] = [None] * len(seqs)
    cache = None
    prev_mask = None
    with torch.inference_mode():
        for depth, nodes in enumerate(levels):
            ids, seg_mask = _left_pad([n.tokens for n in nodes], pad_id, device)
            if depth == 0:
                mask = seg_mask
                positions = seg_mask.cumsum(1) - 1
            else:
                parents = torch.tensor([n.parent.row for n in nodes], dtype=torch.long, device=device)
                cache.batch_select_indices(parents)
                parent_mask = prev_mask[parents]
                mask = torch.cat([parent_mask, seg_mask], dim=1)
                positions = parent_mask.sum(1, keepdim=True) + seg_mask.cumsum(1) - 1
            last_level = depth == len(levels) - 1
            result = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions.clamp(min=0),
                past_key_values=cache,
                use_cache=not last_level,
                logits_to_keep=1,
            )
            logits = result.logits[:, -1, :].float()
            for row, node in enumerate(nodes):
                node.row = row
                for i in node.ends:
                    out[i] = logits[row]
            cache = None if last_level else result.past_key_values
            prev_mask = mask
    return torch.stack(out).cpu()


def continuation_logprobs(
    loaded: LoadedModel,
    items: list[tuple[list[int], list[int]]],
    *,
    max_logit_elements: int = 1 << 27,
    max_rows: int = 16,
) -> list[list[float]]:
    """Per-token log p(continuation token | prefix, earlier continuation tokens) for each item.

    Items are (prefix ids, continuation ids) with a non-empty prefix. Rows are sorted by length and
    batched under a budget on the logits kept in memory (rows x continuation length x vocab).
    """
    import torch

    model, device = loaded.model, loaded.device
    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    vocab = model.get_output_embeddings().weight.shape[0]
    results: list[list[float]] = [[] for _ in items]
    order = sorted(
        (i for i in range(len(items)) if items[i][1]), key=lambda i: (len(items[i][0]) + len(items[i][1]), i)
    )
    start = 0
    while start < len(order):
        batch = [order[start]]
        keep = len(items[order[start]][1]) + 1
        while start + len(batch) < len(order) and len(batch) < max_rows:
            nxt = order[start + len(batch)]
            k = max(keep, len(items[nxt][1]) + 1)
            if (len(batch) + 1) * k * vocab > max_logit_elements:
                break
            batch.append(nxt)
            keep = k
        start += len(batch)
        seqs = [items[i][0] + items[i][1] for i in batch]
        ids, mask = _left_pad(seqs, pad_id, device)
        with torch.inference_mode():
            logits = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(1) - 1).clamp(min=0),
                use_cache=False,
                logits_to_keep=keep,
            ).logits
            for row, i in enumerate(batch):
                cont = items[i][1]
                n = len(cont)
                # Kept positions are the last `keep` of the row; the one before token j predicts it.
                rows = logits[row, keep - n - 1 : keep - 1].float().log_softmax(-1)
                target = torch.tensor(cont, dtype=torch.long, device=rows.device).unsqueeze(1)
                results[i] = rows.gather(1, target).squeeze(1).tolist()
    return results


def greedy_generate(loaded: LoadedModel, prompts: list[list[int]], *, max_new_tokens: int) -> list[tuple[str, int]]:
    """Greedy continuation of each tokenised prompt in one left-padded generate call: (text, tokens)."""
    import torch

    model, tokenizer, device = loaded.model, loaded.tokenizer, loaded.device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = _left_pad(prompts, pad_id, device)
    eos = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    eos.update(configured if isinstance(configured, list) else [configured])
    eos.discard(None)
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            eos_token_id=sorted(eos),
        )
    results = []
    for row in out[:, ids.shape[1] :].tolist():
        n = len(row)
        for pos, tok in enumerate(row):
            if tok in eos:
                n = pos
                break
        results.append((tokenizer.decode(row[:n], skip_special_tokens=True).strip(), n))
    return results
