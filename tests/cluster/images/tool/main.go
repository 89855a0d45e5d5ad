// Command tool is the payload of the real node's test images:
//
//	tool sleep            print a line, then sleep until SIGTERM (exit 0)
//	tool exit N           print a line, then exit with status N (a crash loop under restartPolicy Always)
//	tool touch FILE       create FILE, then sleep (flips an exec probe that tests FILE)
//	tool test-file FILE   exit 0 when FILE exists, else 1 (for exec probes)
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch command, args := os.Args[1], os.Args[2:]; {
	case command == "sleep" && len(args) == 0:
		sleep()
	case command == "exit" && len(args) == 1:
		code, err := strconv.Atoi(args[0])
		if err != nil {
			usage()
		}
		fmt.Printf("kubeops tool: exiting with status %d\n", code)
		os.Exit(code)
	case command == "touch" && len(args) == 1:
		if err := os.WriteFile(args[0], nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		sleep()
	case command == "test-file" && len(args) == 1:
		if _, err := os.Stat(args[0]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

// sleep says it runs (for kubectl logs), then waits for SIGTERM or SIGINT and exits 0,
// so a pod's graceful deletion takes no longer than the signal.
func sleep() {
	fmt.Printf("kubeops tool: running as pid %d on %s\n", os.Getpid(), hostname())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	fmt.Println("kubeops tool: stopping")
}

func hostname() string {
	name, _ := os.Hostname()
	return name
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tool sleep | exit N | touch FILE | test-file FILE")
	os.Exit(2)
}
