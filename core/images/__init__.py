"""Images: a content-addressed store, archive import, safe layer unpacking, overlay snapshots,
and the image config -> runtime spec translation behind ``mrun run IMAGE``."""
