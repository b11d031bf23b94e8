"""One module per command-line command; `mediamon.cli` parses and dispatches."""
