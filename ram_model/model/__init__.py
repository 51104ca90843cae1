"""The network and what defines it: RAM/RAM++ (`ram`), its Swin image encoder (`swin`), the tagging head, the
configs and presets, the tag vocabulary, restriction to a class subset and the input transform (`preprocess`)."""
