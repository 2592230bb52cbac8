"""Neural building blocks shared by the models (audiocraft's ``modules/``)."""
