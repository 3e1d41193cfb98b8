from socikit.cli import run

run()
