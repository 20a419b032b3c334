"""rlvr: reasoning-RL post-training for small language models."""
__version__ = "0.1.0"
