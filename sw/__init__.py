"""Host stack: importer, compiler, runtime, CLI (top layer)."""
