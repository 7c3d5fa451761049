from devex_cli.cli import main

main()
