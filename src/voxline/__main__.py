from voxline.cli import main

main()
