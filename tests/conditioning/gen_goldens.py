#!/usr/bin/env python3
"""Writes tests/conditioning/goldens.json: more CLIP token-id goldens.

The reference ids (../shared/reference/tokens.json) come from transformers
4.38's slow CLIPTokenizer with ftfy 6.1.1. Newer transformers (5.x) only ship
the fast tokenizer, which skips ftfy (it differs on HTML entities, ligatures,
full-width letters), so this script carries the slow tokenizer's algorithm
(tokenization_clip.py of 4.38: added-token split, ftfy.fix_text,
whitespace_clean, lower, the CLIP regex, byte-level BPE) and first proves it
reproduces every prompt of tokens.json before writing new goldens. For each
new prompt it also records whether transformers' installed CLIPTokenizer
agrees ("fast_agrees"), as a second opinion.

Dev-only requirements: ftfy==6.1.1 (pip install --target DIR ftfy==6.1.1 and
PYTHONPATH=DIR), regex, and optionally transformers.

    PYTHONPATH=/tmp/pydeps python tests/conditioning/gen_goldens.py \
        ../shared/reference > tests/conditioning/goldens.json
"""
import html
import json
import os
import sys

import ftfy
import regex as re

assert ftfy.__version__ == "6.1.1", "the reference ids were made with ftfy 6.1.1"

PROMPTS = [
    "café déjà vu, naïve façade, Ångström, São Paulo",
    "e\u0301 composed by NFC, Ä vs A\u0308",
    "ΟΔΟΣ ΣΟΦΙΑΣ Σ final sigma",
    "İstanbul DİYARBAKIR",
    "emoji 🦊🔥 fox on fire 👍🏽 thumbs ❤️",
    "😀😃😄😁😆😅😂🤣",
    "東京タワー at night, 北京烤鸭, 서울의 밤",
    "numbers 1234567890 3.14159 1,000,000 ½ ² ٣ ४",
    "punctuation!!! ??? ... --- *** ~~~ ((( ))) [[[ ]]]",
    "wow!! hi! !hello! a!b",
    "don't can't we're they've I'm you'll he'd it's",
    "DON'T CAN'T WE'RE 'S 'T",
    "quotes “curly” ‘single’ „low“ ʼmodifier",
    "ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ Ĳ ǆ ligatures",
    "ＡＢＣ　ｆｕｌｌ　ｗｉｄｔｈ　１２３ ｶﾀｶﾅ",
    "&amp;amp; &lt;b&gt; &#x41; &#65; &copy; &AMP; &nbsp;x &bogus; &#xD800;",
    "<b>html stays</b> &amp; here",
    "line one &amp;\nline two <tag>\nline three &amp;",
    "tabs\tand\u00a0nbsp\u2003em space\u3000ideographic",
    "control\x07chars\x1b[31mred\x1b[0m and\u200bzero width",
    "soft\u00adhyphen and bom\ufeff",
    "\x85next line\u2028line sep\u2029para",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "<|startoftext|><|endoftext|><|endoftext|>",
    "&lt;|endoftext|&gt; escaped special",
    "under_score snake_case CamelCase kebab-case",
    "x1y2z3 abc123def 3d 4k 8k 16:9",
    "hello\r\nworld\rand\nmore",
    "Ⅻ Ⅷ ① ② ⑴ ⒈ ¼ ¾",
    "mixed русский English 日本 한국 العربية עברית हिन्दी ไทย",
    "a photo of a cat, " * 12,
    " ".join(["masterpiece"] * 80),
    "",
    " \t\n ",
    "(((best quality))), [[worst]], (cat:1.3), <lora:x:0.5> BREAK dog",
]

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class SlowClip:
    """transformers 4.38 CLIPTokenizer (slow) with ftfy, restated."""

    pat = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                     re.IGNORECASE)

    def __init__(self, folder):
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            self.encoder = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            merges = f.read().strip().split("\n")[1:49152 - 256 - 2 + 1]
        self.ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.cache = {BOS: BOS, EOS: EOS}
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        with open(os.path.join(folder, "special_tokens_map.json"), encoding="utf-8") as f:
            smap = json.load(f)
        pad = smap.get("pad_token", cfg.get("pad_token"))
        pad = pad["content"] if isinstance(pad, dict) else pad
        self.added = {v["content"]: int(k) for k, v in cfg.get("added_tokens_decoder", {}).items()}
        self.added.setdefault(BOS, self.encoder[BOS])
        self.added.setdefault(EOS, self.encoder[EOS])
        self.pad_id = self.added.get(pad, self.encoder.get(pad))

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if bigram not in self.ranks:
                break
            first, second = bigram
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        res = " ".join(word)
        self.cache[token] = res
        return res

    def split_added(self, text):
        # The tokens trie: leftmost, longest added token.
        out, start, i = [], 0, 0
        names = sorted(self.added, key=len, reverse=True)
        while i < len(text):
            hit = next((a for a in names if text.startswith(a, i)), None)
            if hit is None:
                i += 1
                continue
            out.append((text[start:i], False))
            out.append((hit, True))
            i += len(hit)
            start = i
        out.append((text[start:], False))
        return [(t, s) for t, s in out if t]

    def ids(self, text):
        res = []
        for piece, special in self.split_added(text):
            if special:
                res.append(self.added[piece])
                continue
            clean = re.sub(r"\s+", " ", ftfy.fix_text(piece)).strip().lower()
            for tok in re.findall(self.pat, clean):
                tok = "".join(self.byte_encoder[b] for b in tok.encode("utf-8"))
                for sym in self.bpe(tok).split(" "):
                    res.append(self.encoder.get(sym, self.encoder[EOS]))
        return res

    def frame(self, ids):
        body = ids[:75]
        out = [self.encoder[BOS]] + body + [self.encoder[EOS]]
        return out + [self.pad_id] * (77 - len(out))


def fast_ids(folder, prompts):
    try:
        from transformers import CLIPTokenizer
    except Exception:
        return None
    tok = CLIPTokenizer.from_pretrained(folder)
    return [tok(p, add_special_tokens=False).input_ids for p in prompts]


def main():
    ref = sys.argv[1] if len(sys.argv) > 1 else "../shared/reference"
    t1 = SlowClip(os.path.join(ref, "tokenizer"))
    t2 = SlowClip(os.path.join(ref, "tokenizer_2"))
    with open(os.path.join(ref, "tokens.json"), encoding="utf-8") as f:
        golden = json.load(f)
    for case in golden["cases"]:
        p = case["prompt"]
        full = [49406] + t1.ids(p) + [49407]
        assert full == case["untruncated_ids"], f"self-check failed on {p!r}"
        assert t1.frame(t1.ids(p)) == case["input_ids"], p
        assert t2.frame(t2.ids(p)) == case["input_ids_pad_bang"], p
    fast1 = fast_ids(os.path.join(ref, "tokenizer"), PROMPTS)
    cases = []
    for i, p in enumerate(PROMPTS):
        ids1, ids2 = t1.ids(p), t2.ids(p)
        case = {
            "prompt": p,
            "input_ids": t1.frame(ids1),
            "input_ids_pad_bang": t2.frame(ids2),
            "untruncated_ids": [49406] + ids1 + [49407],
        }
        if fast1 is not None:
            case["fast_agrees"] = fast1[i] == ids1
        cases.append(case)
    json.dump({
        "description": "CLIP ids from the slow CLIPTokenizer algorithm (transformers 4.38) with ftfy "
                       + ftfy.__version__ + ", self-checked against ../shared/reference/tokens.json. "
                       "Written by gen_goldens.py.",
        "cases": cases,
    }, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
