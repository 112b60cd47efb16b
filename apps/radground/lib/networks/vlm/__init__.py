"""The shared Qwen2.5-VL-class vision-language model (tiny from config, or a local folder); see vlm_api.md."""
from .config import VLMConfig
from .images import VisionInputs, concat_inputs, make_image_processor, select_images, slices_to_inputs, window_hu
from .model import add_task_tokens, apply_lora, base_model, build_vlm, load_vlm_checkpoint, vlm_checkpoint
from .prompt import IGNORE, Turn, encode_dialogue, pad_batch
from .tokenizer import FORMAT_TOKENS, add_tokens, token_ids

__all__ = [
    "FORMAT_TOKENS",
    "IGNORE",
    "Turn",
    "VLMConfig",
    "VisionInputs",
    "add_task_tokens",
    "add_tokens",
    "apply_lora",
    "base_model",
    "build_vlm",
    "concat_inputs",
    "encode_dialogue",
    "load_vlm_checkpoint",
    "make_image_processor",
    "pad_batch",
    "select_images",
    "slices_to_inputs",
    "token_ids",
    "vlm_checkpoint",
    "window_hu",
]
