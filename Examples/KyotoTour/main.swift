import Kyoto
let r = Runtime.multiThread(workers: 2)
print(r.blockOn { 1 + 1 })
