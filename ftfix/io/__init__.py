"""Reading only: the checkpoint view, safetensors headers and rows, JSON that keeps its format."""
