"""Static files of the Mini App and the website widget (a package, so the wheel carries them)."""
