# The scenario matrix shared by bench/compare.sh and bench/ab.sh. Source it after setting SECONDS_PER_RUN.

# The `warren perf` options of scenarios 1-6, 9 and 10 for one run (queues and exchanges are named per run, so a run never
# sees what an earlier one left; garagemq refuses server-named queues).
scenario_options() { # id run
  local t=$SECONDS_PER_RUN n="cmp-$1-r$2" ack="--multi-ack-every 100 --qos 1000"
  case $1 in
    1) echo "--producers 1 --consumers 1 --size 16 --autoack --time $t --queue $n" ;;
    2) echo "--producers 1 --consumers 1 --size 16 $ack --time $t --queue $n" ;;
    3) echo "--producers 1 --consumers 1 --size 1024 --persistent --durable-queue --confirm 1000 $ack --time $t --queue $n" ;;
    4) echo "--producers 4 --consumers 4 --queues 4 --spread --size 1024 --autoack --time $t --queue $n" ;;
    5) echo "--producers 1 --queues 10 --exchange $n --size 16 $ack --time $t --queue $n" ;;
    6) echo "--producers 1 --consumers 1 --size 16 --rate 1000 $ack --threads 1 --time $t --queue $n" ;;
    9) echo "--producers 16 --consumers 2 --size 16 $ack --time $t --queue $n" ;;
    10) echo "--producers 1 --consumers 1 --size 16 --rate 10000 --consumer-rate 5000 $ack --time $t --queue $n" ;;
    # Scenario 1 on a queue that uses a feature: what the feature costs (ab.sh only).
    11) echo "--producers 1 --consumers 1 --size 16 --autoack --time $t --queue $n --queue-args x-message-ttl=60000" ;;
    12) echo "--producers 1 --consumers 1 --size 16 --autoack --time $t --queue $n --queue-args x-max-priority=10" ;;
    # Scenarios 1 and 2 held at a fixed 1,000,000 msg/s, below saturation: the broker's CPU per message without the
    # run-to-run swings of a saturated broker (ab.sh only).
    13) echo "--producers 1 --consumers 1 --size 16 --rate 1000000 --autoack --time $t --queue $n" ;;
    14) echo "--producers 1 --consumers 1 --size 16 --rate 1000000 $ack --time $t --queue $n" ;;
  esac
}
