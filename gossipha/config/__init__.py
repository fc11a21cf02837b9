"""Configuration: the model, and the two sources that fill it (ha.d and TOML)."""
