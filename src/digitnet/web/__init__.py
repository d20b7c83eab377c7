"""The web server: a drawing page and a JSON API over a trained run (``digitnet serve``)."""
