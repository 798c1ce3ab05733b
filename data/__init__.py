"""Dataset preparation: converters from raw public releases and the built-in synthetic faces."""
