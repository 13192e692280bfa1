"""``adaptergate data check``: data quality of a JSONL file, and its overlap with holdouts.

The file may be a holdout or the training data a candidate adapter was trained
on; nothing here assumes holdout semantics. One pass reports:

* **schema compliance** (``--schema``): every JSON object is validated with
  :class:`jsonschema.Draft202012Validator` (full draft 2020-12, ``format``
  checked with the validator's :class:`~jsonschema.FormatChecker`). The schema
  is checked against the 2020-12 meta-schema first; a bad one is invalid input.
  A non-blank line that is not a JSON object is an invalid record
  (``line L: not a JSON object``). Problems read ``line L: <json path>: <message>``;
  ``problem_counts`` counts the errors per failing keyword (``not_object`` for
  lines that are not objects).
* **length distribution** of each record's text (:func:`record_text`), in
  characters and whitespace tokens: min, p5, median, p95, max, mean.
* **duplicates** among the JSON objects, each a fraction of them; every level
  includes the stricter ones before it (``near >= normalised``):

  - ``exact``: the record (as JSON with sorted keys) repeats an earlier record;
  - ``normalised``: the text, normalised by :func:`normalise` (NFKC, casefold,
    punctuation and format characters removed, whitespace collapsed), repeats an
    earlier record's;
  - ``near``: the text's word 5-shingle set has Jaccard similarity >= 0.8 with
    an earlier record's (found by MinHash + LSH banding, then verified exactly:
    :mod:`~adaptergate.holdout.datacheck.minhash`).

* **n-gram diversity** over the normalised tokens: distinct-1 and distinct-2
  (unique / total n-grams over the whole file, n-grams within a record) and
  ``ttr``, the mean type-token ratio of a record (distinct-1 *is* the file's
  type-token ratio, so the per-record mean is what adds information).
* **contamination** (``--holdout``, repeatable): records of the file whose text
  overlaps a holdout query. A record's texts are its whole text, its prompt side
  (user turns, prompt, instruction + input) and each user turn; a query's are its
  prompt and its prompt + ``"\\n"`` + gold. ``exact``: a record text equals a query
  text (surrounding whitespace ignored); ``normalised``: equal after
  :func:`normalise`; ``near``: whole text or prompt side against the query's
  prompt or prompt + gold at shingle Jaccard >= 0.8. Any overlap is a failed check:
  the holdout no longer measures generalisation, and the gate's verdict would be
  optimistic.

One job a module: :mod:`~adaptergate.holdout.datacheck.text` (a record's text,
normalisation), :mod:`~adaptergate.holdout.datacheck.reading` (the JSONL lines),
:mod:`~adaptergate.holdout.datacheck.schema`, :mod:`~adaptergate.holdout.datacheck.minhash`,
:mod:`~adaptergate.holdout.datacheck.duplicates`, :mod:`~adaptergate.holdout.datacheck.stats`
(lengths, diversity), :mod:`~adaptergate.holdout.datacheck.contamination`,
:mod:`~adaptergate.holdout.datacheck.check` (the pass and the report) and
:mod:`~adaptergate.report.datacheck` (the report for a terminal).
"""

from adaptergate.holdout.datacheck.check import check_data, exit_code
from adaptergate.holdout.datacheck.minhash import NEAR_THRESHOLD, SHINGLE_SIZE
from adaptergate.holdout.datacheck.text import normalise, record_text

__all__ = [
    "NEAR_THRESHOLD",
    "SHINGLE_SIZE",
    "check_data",
    "exit_code",
    "normalise",
    "record_text",
]
