"""``request_hash`` and ``job_key`` are built from parts for speed; the bytes hashed are
exactly the canonical JSON the identity scheme defines (keys already stored stay valid)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from batchgen.models import (
    JobSpec,
    Location,
    Reference,
    _sha256_json,
    canonical_request,
    job_key,
    request_hash,
)

_TEXT = st.text(max_size=40)
_PAIRS = st.lists(st.tuples(_TEXT, _TEXT), max_size=4, unique_by=lambda p: p[0])
_REFS = st.lists(
    st.builds(
        Reference,
        source=_TEXT,
        where=st.none() | st.builds(Location, _TEXT, st.integers(1, 9)),
        sha256=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    ),
    max_size=3,
)


@given(_TEXT, _TEXT, _PAIRS, _PAIRS, _REFS, st.sampled_from(["kling-3-0", "x"]))
def test_the_request_hash_is_the_sha256_of_the_canonical_json(
    job_id, prompt, params, extra, refs, model
) -> None:
    names = {name for name, _ in params}
    extra = [(name, value) for name, value in extra if name not in names]  # never clash
    spec = JobSpec(
        job_id,
        prompt,
        tuple(sorted(params)),
        tuple(refs),
        model=model,
        extra_params=tuple(sorted(extra)),
    )
    assert request_hash(spec) == _sha256_json(canonical_request(spec))
    assert spec.request_hash == request_hash(spec)  # cached on the spec, the same


@given(_TEXT, _TEXT, _TEXT)
def test_the_job_key_is_the_sha256_of_the_json_list(batch, job_id, req_hash) -> None:
    assert job_key(batch, job_id, req_hash) == "bg-" + _sha256_json([batch, job_id, req_hash])[:32]


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", fullmatch=True))
def test_a_valid_ids_stem_is_its_output_stem(job_id) -> None:
    """The checker's shortcut for the file name of a valid id is ``output_stem`` itself."""
    from batchgen.manifest.check import valid_id_stem
    from batchgen.manifest.template import id_problem
    from batchgen.models import output_stem

    assert id_problem(job_id) is None
    assert valid_id_stem(job_id) == output_stem(job_id)
