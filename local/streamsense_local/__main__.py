from streamsense_local.cli import main

main()
