"""Checking text prompts against a detector's tokenizer: words it would misread and phrase
separators it would split on."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

log = logging.getLogger(__name__)


def check_prompt_vocabulary(source: str, tokenizer: Any, prompts: tuple[str, ...]) -> None:
    """Refuse prompts the model's tokenizer knows no word of (every token its unknown token),
    and warn of a prompt word it reads as the unknown token.

    A checkpoint folder copied without its tokenizer files (``vocab.txt``, ``tokenizer.json``)
    still loads: transformers then builds an empty tokenizer that turns every word into the
    unknown token, and the run labels with a text the model never saw, with no error. A whole
    tokenizer (the released Grounding DINO's: bert-base-uncased, 30522 tokens) reads a word
    holding a character outside its vocabulary (``bike🚲``: an emoji, a symbol) whole as
    [UNK]: the prompt is then refused, or the model looks for the prompt's other words alone."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return

    def unknown_word(text: str) -> bool:
        got = tokenizer(text, add_special_tokens=False)["input_ids"]
        # a prompt of no token at all is the callers' error to name ("gives no tokens")
        return bool(got) and set(got) <= {unk}

    unknown = [p for p in prompts if unknown_word(p)]
    if unknown and len(tokenizer) <= len(set(tokenizer.all_special_ids)):  # files missing
        raise ValueError(
            f"{source}: the tokenizer knows no word of prompts {unknown} (every token is "
            f"{tokenizer.unk_token}, it holds {len(tokenizer)} tokens); the tokenizer files "
            "(tokenizer.json, tokenizer_config.json, its vocabulary) are missing from the "
            "checkpoint folder or are not its own: copy them from where the model came from, "
            "or reword the prompt"
        )
    if unknown:
        raise ValueError(
            f"{source}: the tokenizer ({len(tokenizer)} tokens) reads every word of prompts "
            f"{unknown} as {tokenizer.unk_token} (a word holding a character outside its "
            "vocabulary, an emoji or a symbol, is read whole as that), so the model would look "
            "for nothing: reword the prompt"
        )
    # words as the tokenizer splits them (BERT: at spaces and punctuation, 'traffic-light🚦'),
    # each as typed (a byte-level pre-tokenizer, CLIP's, rewrites the text it splits)
    pre = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    split = (lambda p: [p[a:b] for _, (a, b) in pre.pre_tokenize_str(p)]) if pre else str.split
    misread = partial(_misread_word, tokenizer, unk)
    words = {p: [named for w in split(p) if (named := misread(w))] for p in prompts}
    if partly := {p: w for p, w in words.items() if w}:
        cjk = any(part for w in partly.values() for _, part in w)  # some word read partly
        log.warning(
            "%s: the tokenizer reads %s as %s (a word holding a character outside its "
            "vocabulary, an emoji or a symbol, is read whole as that%s): the model looks for "
            "the rest of the prompt alone; reword it",
            source,
            "; ".join(f"{', '.join(n for n, _ in w)} of prompt {p!r}" for p, w in partly.items()),
            tokenizer.unk_token,
            "; a Chinese, Japanese or Korean character on its own" if cjk else "",
        )


def _misread_word(tokenizer: Any, unk: int, word: str) -> tuple[str, bool] | None:
    """``word`` named as far as ``tokenizer`` reads it as its unknown token ``unk``, and whether
    only partly: the word (quoted) where it is read whole as that; where only some of its
    tokens are (BERT reads each Chinese, Japanese or Korean character on its own: ``自行車`` of
    a vocabulary without ``車``), those characters and the word, ``'車' of '自行車'``; None
    where no token is. Before the fifty-sixth round a word read partly so was not named."""
    got = tokenizer(word, add_special_tokens=False)["input_ids"]
    if unk not in got:
        return None
    if set(got) <= {unk}:
        return repr(word), False
    chars = dict.fromkeys(
        c for c in word if tokenizer(c, add_special_tokens=False)["input_ids"] == [unk]
    )
    return f"{', '.join(map(repr, chars)) or 'part'} of {word!r}", True


def check_phrase_separators(
    source: str, model: Any, input_ids: list[int], prompt_tokens: list[Any]
) -> None:
    """Refuse a tokenizer whose ids for [CLS], "." and [SEP] are not the ones the detector
    separates prompts by.

    Grounding DINO keeps each prompt's attention to itself and restarts its positions at each
    separator, found by token id: its ``special_tokens`` (transformers' ``SPECIAL_TOKENS``,
    bert-base-uncased's [CLS] 101, [SEP] 102, "." 1012 and "?" 1029: the released checkpoints
    ship that tokenizer). A tokenizer of another vocabulary gives none of them, and the model
    read the prompts as one text, every token attending to itself alone at position 0, without
    an error. ``input_ids``: the detector's text, tokenized;
    ``prompt_tokens``: each prompt's token positions there, each followed by its "."."""
    special = getattr(getattr(model, "model", None), "special_tokens", None)
    if special is None:
        return
    special = sorted(int(t) for t in special.tolist())
    found = [i for i, t in enumerate(input_ids) if t in special]
    wanted = [0, *(int(max(t)) + 1 for t in prompt_tokens), len(input_ids) - 1]
    if found != wanted:
        cls, dot, sep = (input_ids[i] for i in (0, wanted[1], -1))
        raise ValueError(
            f"{source}: its tokenizer gives [CLS], '.' and [SEP] the ids {cls}, {dot}, {sep}, and "
            f"the model separates prompts by the ids {', '.join(map(str, special))} "
            "(bert-base-uncased's [CLS], [SEP], '.' and '?'), so it would not read the prompts "
            "apart; the tokenizer files (tokenizer.json, vocab.txt) are another model's: restore "
            "those saved with the model"
        )
