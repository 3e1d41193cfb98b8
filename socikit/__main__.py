from socikit.cli import main

main()
