"""The manifest's JSON Schema (draft-07, the newest yaml-language-server fully supports).

It gives editors completion, hover text and inline errors. It checks shape and the kling-3-0
param values; ``batchgen validate`` remains the authority (templates, ids, files, counts).
Built from the contract, so the allowed values cannot drift from what validation enforces.
"""

from __future__ import annotations

from typing import Any

from batchgen.contract import (
    EXTRA_PARAM_NAME,
    MAX_PROMPT_CHARS,
    MAX_REFERENCE_BYTES,
    MAX_REFERENCES,
    MODEL_ID,
    PARAMS,
    REFERENCE_ITEMS_PARAM,
    ParamRule,
)
from batchgen.models import Limits

Schema = dict[str, Any]


def manifest_json_schema() -> Schema:
    """The JSON Schema of a batchgen manifest, as a JSON-ready dict."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "batchgen manifest",
        "description": "A batch of Rivya kling-3-0 video generations. See docs/manifest.md.",
        "type": "object",
        "additionalProperties": False,
        "patternProperties": {"^x-": {"description": "Ignored: a place for YAML anchors."}},
        "properties": _top_properties(),
        "definitions": _definitions(),
        "anyOf": [{"required": ["matrix"]}, {"required": ["jobs"]}, {"required": ["rows"]}],
    }


def _top_properties() -> Schema:
    return {
        "version": {"const": 1, "description": "Manifest format version. Always 1."},
        "batch": {
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            "description": "Names the batch and its default state file state/<batch>.db "
            "(in the manifest's folder). "
            "Default: the manifest's file name.",
        },
        "model": {"const": MODEL_ID, "description": f"The model. Only {MODEL_ID}."},
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "description": "What every job starts from; jobs override params key by key and "
            "replace references as a whole.",
            "properties": {
                "params": {"$ref": "#/definitions/params"},
                "extra_params": {"$ref": "#/definitions/extra_params"},
                "references": {"$ref": "#/definitions/references"},
            },
        },
        "matrix": _matrix(),
        "prompt": {
            "type": "string",
            "minLength": 1,
            "description": "Prompt template of matrix jobs (and of jobs/rows without a prompt). "
            "{axis} inserts an axis value; {{ and }} are literal braces. After templating, at "
            f"most {MAX_PROMPT_CHARS} characters and {MAX_PROMPT_CHARS} UTF-16 units "
            "(an emoji counts twice).",
        },
        "id": {
            "type": "string",
            "description": "Id template of matrix jobs, e.g. '{product}-{aspect_ratio}'. "
            "Inserted values are slugified. Default: the axis values joined by '-'.",
        },
        "exclude": _exclude(),
        "repeat": {
            "type": "integer",
            "minimum": 1,
            "description": "Variations per job (ids get -1, -2, ...). Default 1.",
        },
        "jobs": {"type": "array", "items": {"$ref": "#/definitions/job"}},
        "rows": _rows(),
        "output": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dir": {
                    "type": "string",
                    "description": "Where videos land as <job id>.mp4, relative to the "
                    "manifest's folder. Default out/<batch>.",
                }
            },
        },
        "limits": _limits(),
        "schedule": {
            "type": "object",
            "additionalProperties": False,
            "required": ["window"],
            "description": "submit new jobs only inside a daily window; outside it tasks in "
            "flight are still followed, and the run exits 4 saying when the window opens",
            "properties": {
                "window": {
                    "type": "string",
                    "pattern": f"^\\s*{_HHMM}\\s*-\\s*{_HHMM}\\s*$",
                    "description": "start-end, 24-hour clock: 22:00-06:00 spans midnight",
                },
                "timezone": {
                    "type": "string",
                    "description": "an IANA time zone, e.g. Europe/Berlin (default: the machine's)",
                },
            },
        },
    }


def _param(rule: ParamRule) -> Schema:
    native: list[Any] = []
    if rule.is_boolean:
        native = [False, True]
    elif all(o.isdigit() for o in rule.options):
        native = [int(o) for o in rule.options]
    return {
        "enum": list(rule.options) + native,
        "default": rule.default,
        "description": f"kling-3-0 {rule.name}: one of {', '.join(rule.options)} "
        f"(default {rule.default}). May be a template such as '{{{rule.name}}}'.",
    }


def _param_or_template(rule: ParamRule) -> Schema:
    return {"anyOf": [_param(rule), {"type": "string", "pattern": r"\{[A-Za-z_][A-Za-z0-9_]*\}"}]}


def _definitions() -> Schema:
    scalar = {"type": ["string", "number", "boolean"]}
    return {
        "scalar": scalar,
        "params": {
            "type": "object",
            "additionalProperties": False,
            "properties": {name: _param_or_template(rule) for name, rule in PARAMS.items()},
        },
        "extra_params": _extra_params(),
        "references": {
            "description": f"Up to {MAX_REFERENCES} reference images per job: paths relative "
            "to the manifest's folder (JPEG, PNG or WebP, at most 10 MB read as "
            f"{MAX_REFERENCE_BYTES:,} bytes) or http(s) URLs.",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "maxItems": MAX_REFERENCES},
            ],
        },
        "job": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": {"type": ["string", "integer"], "description": "Unique id of the job."},
                "prompt": {"type": "string", "minLength": 1, "maxLength": MAX_PROMPT_CHARS},
                "params": {"$ref": "#/definitions/params"},
                "extra_params": {"$ref": "#/definitions/extra_params"},
                "references": {"$ref": "#/definitions/references"},
                "repeat": {"type": "integer", "minimum": 1},
                "vars": {
                    "type": "object",
                    "description": "Template variables of this job.",
                    "additionalProperties": scalar,
                },
            },
        },
    }


def _extra_params() -> Schema:
    return {
        "type": "object",
        "description": "Params batchgen does not know yet, sent unchecked in the request's "
        "params (true -> 'true', 5 -> '5'); the service may refuse them. Known params go "
        "under params.",
        "propertyNames": {
            "pattern": f"^{EXTRA_PARAM_NAME.pattern}$",
            "not": {"enum": [*PARAMS, REFERENCE_ITEMS_PARAM]},
        },
        "additionalProperties": {"type": ["string", "integer", "boolean"]},
    }


def _matrix() -> Schema:
    axis = {
        "anyOf": [
            {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/scalar"}},
            {"$ref": "#/definitions/scalar"},
        ]
    }
    return {
        "type": "object",
        "minProperties": 1,
        "description": "Cartesian product of axes. An axis named like a param sets it; "
        "every axis is a template variable.",
        "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "additionalProperties": axis,
        "properties": {
            name: {
                "anyOf": [
                    {"type": "array", "minItems": 1, "items": _param(rule)},
                    _param(rule),
                ]
            }
            for name, rule in PARAMS.items()
        },
    }


def _exclude() -> Schema:
    value = {
        "anyOf": [
            {"$ref": "#/definitions/scalar"},
            {"type": "array", "items": {"$ref": "#/definitions/scalar"}},
        ]
    }
    return {
        "type": "array",
        "description": "Matrix combinations to skip: each entry is a partial combination.",
        "items": {"type": "object", "minProperties": 1, "additionalProperties": value},
    }


def _rows() -> Schema:
    file = {"type": "string", "pattern": r"\.(csv|jsonl|ndjson|CSV|JSONL)$"}
    return {
        "description": "CSV/JSONL file(s), one job per row: columns id, prompt, references "
        "(separated by |), repeat, any param; other columns are template variables.",
        "anyOf": [file, {"type": "array", "items": file}],
    }


_HHMM = "([01]?\\d|2[0-3]):[0-5]\\d"  # a time of day in a schedule window


def _limits() -> Schema:
    default = Limits()
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "requests_per_second": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": default.rate_per_s,
            },
            "burst": {"type": "integer", "minimum": 1, "default": default.burst},
            "max_in_flight": {"type": "integer", "minimum": 1, "default": default.max_in_flight},
            "max_jobs": {
                "type": "integer",
                "minimum": 1,
                "default": 100000,
                "description": "a sanity cap: a manifest that would expand to more jobs stops "
                "at validation, in seconds (a typo in a matrix is a million jobs away)",
            },
            "max_credits": {
                "type": "integer",
                "minimum": 1,
                "description": "the batch's budget: credits charged or held by its tasks, at "
                "most (every version and attempt, refunds counted); --max-credits overrides",
            },
        },
    }
