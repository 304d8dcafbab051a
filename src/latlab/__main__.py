from latlab.cli.main import main

main()
