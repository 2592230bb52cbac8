"""Every codec of the comparison behind one interface (``base``): Duo-Tok itself (``duotok``), the
Table-2 baselines trained here (``rvq``, ``feature_tokenizer``) and Opus (``opus``); ``registry``
loads any of them by name."""
