"""Writers: motion files, written whole or not at all."""
