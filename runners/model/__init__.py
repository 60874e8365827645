"""open_clip models as the runners build them: configs (official and model_configs/),
FLOPs on the meta device, and CLIPA's grid / block image masks."""
