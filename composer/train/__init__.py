"""The training path: `composer train codec|diffusion` from datasets on disk to checkpoints
and model cards; the model packages own the maths."""
